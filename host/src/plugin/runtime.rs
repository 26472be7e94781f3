//! The wasmtime side: one engine and linker per process, the on-disk compile
//! cache, the sandbox every call runs in, and fault classification.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand_wasi::SeedableRng;
use serde::Serialize;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder, Trap};
use wasmtime_wasi::WasiCtxBuilder;

use super::authoring::Manifest;
use super::bindings::v0_2;
use super::cache_dir::default_cache_dir;
use super::compile_cache::{
    FileIdentity, code_file, content_hash, indexed_hash, map_cached, remember_hash,
};
use super::error::{PluginError, PluginFault};
use super::guest_log::{GuestOutput, LogSource, SharedLog};
use super::guests::{GuestIndices, Guests, describe};
use super::limits::{LimitGrant, PluginLimits, grant};
use super::pool::pooled_engine;
use super::sandbox::{FrozenClock, Sandbox, never_block, start_ticker, ticks};
use super::world::{Roles, VersionProblem, WitVersion, detect_version, supported_versions};
use crate::hardware::PluginCeilings;

/// Seed of the guests' (deterministic) randomness.
const GUEST_RANDOM_SEED: u64 = 0x7468_6572_6d6f;

/// How a component's machine code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheUse {
    /// Loaded from the on-disk compile cache.
    Hit,
    /// Compiled now and written to the cache.
    Miss,
    /// Compiled now; no cache directory.
    Disabled,
    /// Already loaded in this process.
    Memory,
}

/// The process's plugin runtime.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Sandbox>,
    cache_dir: Option<PathBuf>,
    config_key: u64,
    loaded: Mutex<HashMap<(PathBuf, String, PluginCeilings), Arc<LoadedPlugin>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime caching compiled code in `cache_dir` (none: no cache).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Runtime, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Fuel is the bound: a budget in instructions is deterministic, so a
        // slow plugin fails the same way on every run and machine. Epochs
        // are the wall-clock safety net on top, for what fuel cannot see.
        config.consume_fuel(true);
        config.epoch_interruption(true);
        let runtime_err = |e: wasmtime::Error| PluginError::Runtime(format!("{e:#}"));
        let engine = pooled_engine(&config).or_else(|e| {
            tracing::warn!(
                "plugin instance pool unavailable ({e:#}); instances allocate on demand"
            );
            Engine::new(&config)
        });
        let engine = engine.map_err(runtime_err)?;
        start_ticker(&engine).map_err(|e| PluginError::Runtime(format!("epoch ticker: {e}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(runtime_err)?;
        never_block(&mut linker).map_err(runtime_err)?;
        // WIT 0.2's `log` import: lines go to the store's guest log.
        v0_2::log::add_to_linker::<Sandbox, wasmtime::component::HasSelf<Sandbox>>(
            &mut linker,
            |s| s,
        )
        .map_err(runtime_err)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Runtime {
            engine,
            linker,
            cache_dir,
            config_key: hasher.finish(),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The runtime shared by the whole process, caching compiled code in
    /// [`default_cache_dir`].
    pub fn shared() -> Result<&'static Runtime, PluginError> {
        static SHARED: OnceLock<Result<Runtime, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Runtime::new(default_cache_dir()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| PluginError::Runtime(e.clone()))
    }

    /// Where compiled code is cached, if anywhere.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// Loads, compiles (or fetches from the cache) and links a component,
    /// under the default ceilings.
    pub fn load(&self, path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        self.load_with(path, &PluginCeilings::default())
    }

    /// Loads a component under the operator's `ceilings`: its manifest's
    /// limits are capped by them.
    pub fn load_with(
        &self,
        path: &Path,
        ceilings: &PluginCeilings,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let started = Instant::now();
        let io_err = |source| PluginError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io_err)?;
        let identity = FileIdentity::of(&meta);
        // A cached component whose file is unchanged is neither read nor
        // hashed again (compile_cache.rs).
        let mut bytes = None;
        let hash = match self
            .cache_dir
            .as_deref()
            .and_then(|dir| indexed_hash(dir, path, &identity))
        {
            Some(hash) => hash,
            None => {
                let read = std::fs::read(path).map_err(io_err)?;
                let hash = content_hash(&read);
                if let Some(dir) = &self.cache_dir {
                    remember_hash(dir, path, &identity, &hash);
                }
                bytes = Some(read);
                hash
            }
        };
        let key = (path.to_path_buf(), hash.clone(), *ceilings);
        if let Some(p) = self.loaded.lock().expect("plugin memo").get(&key) {
            return Ok(Arc::clone(p));
        }
        let (limits, grants) = grant(&read_manifest(path)?, ceilings);
        let (component, cache) = self.compile(path, bytes, &hash)?;
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let version = detect_version(&exports).map_err(|problem| match problem {
            VersionProblem::Mixed(found) => PluginError::MixedVersions {
                path: path.to_path_buf(),
                found,
            },
            VersionProblem::Unknown(found) => PluginError::UnknownVersion {
                path: path.to_path_buf(),
                found,
                supported: supported_versions(),
            },
        })?;
        let roles = version.map_or(Roles::default(), |v| Roles::of(&exports, v));
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link {
                path: path.to_path_buf(),
                detail: format!("{e:#}"),
            })?;
        let indices_err = |e: wasmtime::Error| PluginError::NotAComponent {
            path: path.to_path_buf(),
            detail: format!("{e:#}"),
        };
        let indices = GuestIndices::new(&pre, version, roles).map_err(indices_err)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let plugin = Arc::new(LoadedPlugin {
            path: path.to_path_buf(),
            name,
            hash,
            bytes: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            roles,
            version,
            imports,
            exports,
            limits,
            grants,
            ceilings: *ceilings,
            cache,
            load_time: started.elapsed(),
            engine: self.engine.clone(),
            pre,
            indices,
            model_info: OnceLock::new(),
        });
        // Instantiate once now, so a broken component fails at load time
        // (saying what it printed while it failed).
        let mut first = plugin.instance();
        first.instantiate().map_err(|e| PluginError::Instantiate {
            path: path.to_path_buf(),
            detail: with_output(e.to_string(), &first.take_output()),
        })?;
        tracing::info!(
            path = %path.display(),
            version = %plugin.label(),
            wit = plugin.version.map_or("none", WitVersion::as_str),
            exports = ?plugin.exports,
            cache = ?plugin.cache,
            load_ms = plugin.load_time.as_secs_f64() * 1e3,
            "plugin loaded"
        );
        self.loaded
            .lock()
            .expect("plugin memo")
            .insert(key, Arc::clone(&plugin));
        Ok(plugin)
    }

    /// The component's machine code, from the cache or compiled now;
    /// `bytes` are the component's if already read.
    fn compile(
        &self,
        path: &Path,
        bytes: Option<Vec<u8>>,
        hash: &str,
    ) -> Result<(Component, CacheUse), PluginError> {
        let not_component = |e: wasmtime::Error| PluginError::NotAComponent {
            path: path.to_path_buf(),
            detail: format!("{e:#}"),
        };
        let read = |bytes: Option<Vec<u8>>| match bytes {
            Some(b) => Ok(b),
            None => std::fs::read(path).map_err(|source| PluginError::Io {
                path: path.to_path_buf(),
                source,
            }),
        };
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, read(bytes)?)
                .map(|c| (c, CacheUse::Disabled))
                .map_err(not_component);
        };
        let file = code_file(dir, hash, self.config_key);
        if file.is_file()
            && let Ok(c) = map_cached(&self.engine, &file)
        {
            return Ok((c, CacheUse::Hit));
        }
        let bytes = read(bytes)?;
        // The index said `hash`; a file changed since must not be cached
        // under the old content's name.
        if content_hash(&bytes) != hash {
            return Component::new(&self.engine, &bytes)
                .map(|c| (c, CacheUse::Disabled))
                .map_err(not_component);
        }
        let compiled = self
            .engine
            .precompile_component(&bytes)
            .map_err(not_component)?;
        // A cache that cannot be written only costs the next run a compile.
        let _ = std::fs::create_dir_all(dir)
            .and_then(|()| crate::perf::write_atomically(&file, &compiled));
        match map_cached(&self.engine, &file) {
            Ok(c) => Ok((c, CacheUse::Miss)),
            Err(_) => Component::new(&self.engine, &bytes)
                .map(|c| (c, CacheUse::Disabled))
                .map_err(not_component),
        }
    }
}

fn read_manifest(component: &Path) -> Result<PluginLimits, PluginError> {
    let manifest = component.with_extension("toml");
    match std::fs::read_to_string(&manifest) {
        Ok(text) => toml::from_str::<Manifest>(&text)
            .map(|m| m.limits)
            .map_err(|e| PluginError::Manifest {
                path: manifest,
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PluginLimits::default()),
        Err(source) => Err(PluginError::Io {
            path: manifest,
            source,
        }),
    }
}

/// A compiled, linked component, ready to instantiate.
pub struct LoadedPlugin {
    /// The component file.
    pub path: PathBuf,
    /// File stem: `cost-python` for `cost-python.wasm`.
    pub name: String,
    /// `sha256:<hex>` of the component file.
    pub hash: String,
    /// Size of the file.
    pub bytes: usize,
    /// The roles it exports.
    pub roles: Roles,
    /// The version of `thermoroute:policy` it was built against (none when
    /// it exports no policy interface).
    pub version: Option<WitVersion>,
    /// Its imported interfaces.
    pub imports: Vec<String>,
    /// Its exported interfaces.
    pub exports: Vec<String>,
    /// The limits it runs under: `NAME.toml`'s (else the defaults), capped
    /// by the operator's ceilings; `deadline_ms` is always set.
    pub limits: PluginLimits,
    /// Each limit as asked and as granted, and why.
    pub grants: Vec<LimitGrant>,
    /// The operator's ceilings it was loaded under.
    pub ceilings: PluginCeilings,
    /// Whether the compiled code came from the cache.
    pub cache: CacheUse,
    /// Read, compile or cache load, link and a first instantiation.
    pub load_time: Duration,
    engine: Engine,
    pub(super) pre: InstancePre<Sandbox>,
    indices: GuestIndices,
    /// A 0.2 cost model's `describe`: metadata of the component, asked at
    /// its first instantiation (under that instantiation's budget) and
    /// kept, so later instantiations (after a trap) do not pay for a call.
    model_info: OnceLock<Option<v0_2::cost_model::ModelInfo>>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("path", &self.path)
            .field("hash", &self.hash)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// `name@<first 12 hex digits of the hash>`, as traces show it.
    pub fn label(&self) -> String {
        let digest = self.hash.trim_start_matches("sha256:");
        format!("{}@{}", self.name, &digest[..12.min(digest.len())])
    }

    /// A fresh, not yet instantiated instance.
    pub fn instance(self: &Arc<Self>) -> Instance {
        Instance {
            plugin: Arc::clone(self),
            live: None,
            instantiations: 0,
            log: SharedLog::default(),
        }
    }

    pub(super) fn new_store(&self, log: &SharedLog) -> Store<Sandbox> {
        let l = &self.limits;
        let limits = StoreLimitsBuilder::new()
            .memory_size((l.memory_mib as usize).saturating_mul(1 << 20))
            .instances(l.max_instances as usize)
            .tables(l.max_tables as usize)
            .memories(l.max_memories as usize)
            .table_elements(l.max_table_elements)
            .trap_on_grow_failure(true)
            .build();
        // No preopened directories, arguments, environment or network;
        // stdout and stderr go to the guest log (bounded per call); clocks
        // are frozen; randomness is seeded.
        let wasi = WasiCtxBuilder::new()
            .stdout(log.stream(LogSource::Stdout))
            .stderr(log.stream(LogSource::Stderr))
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(rand_wasi::rngs::StdRng::seed_from_u64(GUEST_RANDOM_SEED))
            .insecure_random(rand_wasi::rngs::StdRng::seed_from_u64(
                GUEST_RANDOM_SEED + 1,
            ))
            .insecure_random_seed(u128::from(GUEST_RANDOM_SEED))
            .build();
        let mut store = Store::new(
            &self.engine,
            Sandbox {
                wasi,
                table: ResourceTable::new(),
                limits,
                guest_log: log.clone(),
            },
        );
        store.limiter(|s| &mut s.limits);
        store
    }
}

/// A live instance: instantiated on first use, reused across calls and
/// rebuilt after a trap (a trapped instance's state cannot be trusted).
pub struct Instance {
    plugin: Arc<LoadedPlugin>,
    live: Option<Live>,
    /// How many times it was (re)instantiated.
    pub instantiations: u64,
    /// What the guest printed or logged, across its stores.
    log: SharedLog,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("plugin", &self.plugin.label())
            .field("instantiations", &self.instantiations)
            .finish_non_exhaustive()
    }
}

pub(super) struct Live {
    pub(super) store: Store<Sandbox>,
    pub(super) guests: Guests,
}

impl Instance {
    /// The component it instantiates.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// Builds a fresh instance now (dropping any current one).
    pub fn instantiate(&mut self) -> Result<(), PluginFault> {
        self.live = None;
        let p = &self.plugin;
        let mut store = p.new_store(&self.log);
        let budget = p.instantiate_budget();
        let fault = |e: wasmtime::Error| match classify(e, &budget) {
            PluginFault::Trap { detail } => PluginFault::Instantiate { detail },
            other => other,
        };
        store.set_fuel(budget.fuel).map_err(fault)?;
        store.set_epoch_deadline(ticks(budget.deadline_ms));
        let instance = p.pre.instantiate(&mut store).map_err(fault)?;
        let guests = p.indices.load(&mut store, &instance).map_err(fault)?;
        if p.model_info.get().is_none() {
            let info = describe(&guests, &mut store).map_err(fault)?;
            let _ = p.model_info.set(info);
        }
        self.instantiations += 1;
        self.live = Some(Live { store, guests });
        Ok(())
    }

    /// Whether the cost model's `total` is the plain sum of its terms: a 0.2
    /// model's own word (`describe`), always for 0.1. Instantiates when no
    /// instance is live.
    pub fn additive(&mut self) -> Result<bool, PluginFault> {
        if self.live.is_none() {
            self.instantiate()?;
        }
        Ok(self
            .plugin
            .model_info
            .get()
            .and_then(Option::as_ref)
            .is_none_or(|m| m.additive))
    }

    pub(super) fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginFault> {
        if self.live.is_none() {
            self.instantiate()?;
        }
        let budget = self.plugin.call_budget();
        let live = self.live.as_mut().expect("instantiated above");
        arm(&mut live.store, &budget)?;
        match f(live) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(message)) => {
                // The first line is the message; the rest (a JavaScript
                // stack, say) joins what the guest printed in this call.
                let (first, rest) = message.split_once('\n').unwrap_or((&message, ""));
                if !rest.trim().is_empty() {
                    self.log.lock().log(LogSource::Error, rest);
                }
                Err(PluginFault::GuestError {
                    message: clip(first.to_string(), budget.log_bytes),
                })
            }
            Err(e) => {
                self.live = None;
                Err(classify(e, &budget))
            }
        }
    }

    /// What the guest printed or logged since the last time this was
    /// asked (a window: normally one call, with any instantiation before it).
    pub fn take_output(&mut self) -> GuestOutput {
        self.log.take()
    }
}

pub(super) fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("… (clipped)");
    }
    s
}

/// `detail`, then what the guest printed, a few lines, for a load error.
pub(super) fn with_output(detail: String, output: &GuestOutput) -> String {
    let lines = output.excerpt(12);
    if lines.is_empty() {
        return detail;
    }
    format!("{detail}; the guest printed:\n  {}", lines.join("\n  "))
}

impl LoadedPlugin {
    /// What an instantiation may spend.
    pub(super) fn instantiate_budget(&self) -> Budget {
        Budget {
            fuel: self.limits.fuel_instantiate,
            memory_mib: self.limits.memory_mib,
            deadline_ms: self.ceilings.instantiate_deadline_ms,
            log_bytes: self.ceilings.max_log_bytes,
        }
    }

    /// What one call may spend: the manifest's limits under the ceilings.
    pub(super) fn call_budget(&self) -> Budget {
        Budget {
            fuel: self.limits.fuel_per_call,
            memory_mib: self.limits.memory_mib,
            deadline_ms: self.limits.deadline_ms.unwrap_or(self.ceilings.deadline_ms),
            log_bytes: self.ceilings.max_log_bytes,
        }
    }
}

/// Gives a store `budget`'s fuel and wall-clock deadline for one call.
pub(super) fn arm(store: &mut Store<Sandbox>, budget: &Budget) -> Result<(), PluginFault> {
    store
        .set_fuel(budget.fuel)
        .map_err(|e| classify(e, budget))?;
    store.set_epoch_deadline(ticks(budget.deadline_ms));
    Ok(())
}

/// What one call (or one instantiation) was given, for naming the limit
/// that ran out.
pub(super) struct Budget {
    pub(super) fuel: u64,
    pub(super) memory_mib: u64,
    pub(super) deadline_ms: u64,
    pub(super) log_bytes: usize,
}

/// Turns a wasmtime error from a call into a typed fault.
pub(super) fn classify(e: wasmtime::Error, budget: &Budget) -> PluginFault {
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => PluginFault::OutOfFuel { fuel: budget.fuel },
            Trap::Interrupt => PluginFault::Deadline {
                ms: budget.deadline_ms,
            },
            Trap::StackOverflow => PluginFault::StackOverflow,
            other => PluginFault::Trap {
                detail: other.to_string(),
            },
        };
    }
    let text = e.root_cause().to_string();
    if e.chain().any(|c| {
        let s = c.to_string();
        s.contains("forcing trap when growing memory") || s.contains("memory growth failure")
    }) {
        return PluginFault::MemoryLimit {
            limit_mib: budget.memory_mib,
        };
    }
    PluginFault::Trap {
        detail: clip(
            text.lines().next().unwrap_or("").to_string(),
            budget.log_bytes,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_names_the_budget_that_ran_out() {
        let instantiation = Budget {
            fuel: 7,
            memory_mib: 64,
            deadline_ms: 5000,
            log_bytes: 4096,
        };
        let f = classify(Trap::OutOfFuel.into(), &instantiation);
        assert_eq!(f.to_string(), "ran out of fuel (7 units)");
        let f = classify(Trap::Interrupt.into(), &instantiation);
        assert_eq!(f, PluginFault::Deadline { ms: 5000 });
        assert_eq!(f.kind(), "deadline");
    }
}

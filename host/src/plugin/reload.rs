//! Hot reload: the file behind a plugin role, the version serving it, and
//! the watch that swaps in a new version once it passes its role's
//! conformance cases (a broken one leaves the old version serving). The
//! decision roles (cost, eligibility, gate) and the queue roles
//! (queue-order, admit, preempt) share it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use notify_debouncer_full::{
    DebounceEventResult, DebouncedEvent, FileIdCache, NoCache, RecommendedCache, new_debouncer_opt,
};

use super::error::PluginError;
use super::runtime::{LoadedPlugin, Runtime};
use super::world::Role;
use crate::hardware::PluginCeilings;
use crate::policy::PolicyNotice;

/// A role a slot serves: its name and what a version must export to
/// serve it.
pub(super) trait SlotRole: Copy + Send + Sync + 'static {
    /// The role's name in notices and logs.
    fn name(self) -> &'static str;
    /// `Ok` when `plugin` exports the role.
    fn require(self, plugin: &LoadedPlugin) -> Result<(), PluginError>;
}

impl SlotRole for Role {
    fn name(self) -> &'static str {
        Role::name(self)
    }

    fn require(self, plugin: &LoadedPlugin) -> Result<(), PluginError> {
        require_role(plugin, self)
    }
}

/// The check a freshly loaded version must pass before it replaces the
/// serving one: `Err` says why it may not.
pub(super) type SmokeTest<R> = fn(&'static Runtime, &Arc<LoadedPlugin>, R) -> Result<(), String>;

/// The file behind one role and the version currently serving it.
pub(super) struct Slot<R: SlotRole = Role> {
    pub(super) role: R,
    pub(super) path: PathBuf,
    pub(super) runtime: &'static Runtime,
    pub(super) ceilings: PluginCeilings,
    pub(super) current: Mutex<Arc<LoadedPlugin>>,
    pub(super) generation: AtomicU64,
    pub(super) notices: Mutex<Vec<PolicyNotice>>,
    pub(super) has_notice: AtomicBool,
    /// The conformance cases a new version must pass before it serves.
    pub(super) smoke: SmokeTest<R>,
}

pub(super) fn require_role(plugin: &LoadedPlugin, role: Role) -> Result<(), PluginError> {
    if plugin.roles.has(role) {
        return Ok(());
    }
    Err(PluginError::MissingRole {
        path: plugin.path.clone(),
        wanted: role.interface(),
        world: role.world(),
        found: if plugin.exports.is_empty() {
            "nothing".into()
        } else {
            plugin.exports.join(", ")
        },
    })
}

impl<R: SlotRole> Slot<R> {
    pub(super) fn open(
        runtime: &'static Runtime,
        role: R,
        path: &Path,
        ceilings: &PluginCeilings,
        smoke: SmokeTest<R>,
    ) -> Result<Arc<Slot<R>>, PluginError> {
        let plugin = runtime.load_with(path, ceilings)?;
        role.require(&plugin)?;
        Ok(Slot::serving(runtime, role, plugin, smoke))
    }

    pub(super) fn serving(
        runtime: &'static Runtime,
        role: R,
        plugin: Arc<LoadedPlugin>,
        smoke: SmokeTest<R>,
    ) -> Arc<Slot<R>> {
        Arc::new(Slot {
            role,
            path: plugin.path.clone(),
            runtime,
            ceilings: plugin.ceilings,
            current: Mutex::new(plugin),
            generation: AtomicU64::new(0),
            notices: Mutex::new(Vec::new()),
            has_notice: AtomicBool::new(false),
            smoke,
        })
    }

    pub(super) fn current(&self) -> Arc<LoadedPlugin> {
        Arc::clone(&self.current.lock().expect("plugin slot"))
    }

    pub(super) fn notify(&self, notice: PolicyNotice) {
        self.notices.lock().expect("plugin notices").push(notice);
        self.has_notice.store(true, Ordering::Release);
    }

    /// Loads the file again; swaps it in if it changed and passes the smoke
    /// test, otherwise keeps the serving version and says why.
    pub(super) fn reload(&self) {
        let old = self.current();
        let attempt = self
            .runtime
            .load_with(&self.path, &self.ceilings)
            .and_then(|p| {
                self.role.require(&p)?;
                (self.smoke)(self.runtime, &p, self.role).map_err(|detail| {
                    PluginError::Instantiate {
                        path: self.path.clone(),
                        detail,
                    }
                })?;
                Ok(p)
            });
        match attempt {
            Ok(p) if p.hash == old.hash => {}
            Ok(p) => {
                let version = p.label();
                tracing::info!(
                    role = self.role.name(),
                    path = %self.path.display(),
                    was = %old.label(),
                    "plugin reloaded: {version} serves"
                );
                *self.current.lock().expect("plugin slot") = p;
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.notify(PolicyNotice {
                    role: self.role.name().into(),
                    policy: format!("plugin:{}", old.name),
                    version,
                    ok: true,
                    detail: format!("reloaded {} (was {})", self.path.display(), old.label()),
                });
            }
            Err(e) => {
                tracing::warn!(
                    role = self.role.name(),
                    path = %self.path.display(),
                    "plugin reload refused, {} serves on: {e}",
                    old.label()
                );
                self.notify(PolicyNotice {
                    role: self.role.name().into(),
                    policy: format!("plugin:{}", old.name),
                    version: old.label(),
                    ok: false,
                    detail: format!("kept {}: the new version is broken: {e}", old.label()),
                });
            }
        }
    }

    /// Watches the file's directory through `notify` (inotify, FSEvents,
    /// ReadDirectoryChangesW; polling where those are missing or with
    /// `THERMOROUTE_WATCH=poll`, e.g. on network file systems) and reloads
    /// once the file's events have been quiet for `debounce`. Watching the
    /// directory, not the file, follows a file replaced by rename, as
    /// editors and `cargo build` write them. The watch ends when the
    /// returned handle is dropped.
    pub(super) fn watch(self: &Arc<Self>, debounce: Duration) -> Option<Box<dyn Send>> {
        let poll = std::env::var("THERMOROUTE_WATCH").is_ok_and(|v| v == "poll");
        let native = if poll {
            None
        } else {
            match watch::<RecommendedWatcher, _, R>(self, debounce, RecommendedCache::new()) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(
                        path = %self.path.display(),
                        "cannot watch for changes ({e}); polling instead"
                    );
                    None
                }
            }
        };
        let watched = match native {
            Some(w) => Ok(w),
            None => watch::<PollWatcher, _, R>(self, debounce, NoCache::new()),
        };
        match watched {
            Ok(w) => Some(w),
            Err(e) => {
                self.notify(PolicyNotice {
                    role: self.role.name().into(),
                    policy: format!("plugin:{}", self.current().name),
                    version: self.current().label(),
                    ok: false,
                    detail: format!("cannot watch for changes: {e}"),
                });
                None
            }
        }
    }

    pub(super) fn take_notices(&self, out: &mut Vec<PolicyNotice>) {
        if self.has_notice.swap(false, Ordering::AcqRel) {
            out.append(&mut self.notices.lock().expect("plugin notices"));
        }
    }
}

/// Whether a debounced event changed `file` (not just opened or read it).
fn changes(event: &DebouncedEvent, file: &Path) -> bool {
    let kind_changes = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    kind_changes
        && event
            .paths
            .iter()
            .any(|p| p.file_name() == file.file_name())
}

/// A debounced watch on `slot`'s directory with watcher `W`.
fn watch<W, C, R>(
    slot: &Arc<Slot<R>>,
    debounce: Duration,
    cache: C,
) -> notify::Result<Box<dyn Send>>
where
    W: Watcher + Send + 'static,
    C: FileIdCache + Send + 'static,
    R: SlotRole,
{
    let weak: Weak<Slot<R>> = Arc::downgrade(slot);
    let file = slot.path.clone();
    let handler = move |result: DebounceEventResult| {
        let Some(slot) = weak.upgrade() else { return };
        match result {
            Ok(events) if events.iter().any(|e| changes(e, &file)) && file.exists() => {
                slot.reload();
            }
            Ok(_) => {}
            Err(errors) => {
                for e in errors {
                    tracing::warn!(path = %file.display(), "watching for changes: {e}");
                }
            }
        }
    };
    let config = notify::Config::default().with_poll_interval(debounce);
    let mut debouncer = new_debouncer_opt::<_, W, C>(debounce, None, handler, cache, config)?;
    let dir = match slot.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::debug!(path = %slot.path.display(), watcher = ?W::kind(), "watching for changes");
    Ok(Box::new(debouncer))
}

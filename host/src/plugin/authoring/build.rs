//! `thermoroute plugin new` writes a template into a directory; `plugin
//! build` turns the directory into a component with its language's toolchain
//! (cargo for Rust, componentize-py for Python, jco/componentize-js for
//! JavaScript, clang with in-process bindings and encoding for C and C++),
//! installed on first use when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::clang;
use super::lang::{COMPONENTIZE_JS, COMPONENTIZE_PY, JCO, Lang};
use super::manifest::{BuildSpec, Manifest};
pub use super::process::BuildError;
use super::process::{io, on_path, run, toolchain_failure};
use super::templates;
use crate::plugin::cache_dir::default_cache_dir;
use crate::plugin::world::Role;

/// Where installed guest toolchains live: `toolchains/` beside the compile
/// cache.
pub fn toolchains_dir() -> PathBuf {
    default_cache_dir()
        .and_then(|c| c.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from(".thermoroute"))
        .join("toolchains")
}

/// The `componentize-py` to use, installing it into a private virtual
/// environment when there is none.
pub fn componentize_py(progress: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    if let Some(p) = std::env::var_os("THERMOROUTE_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = on_path("componentize-py") {
        return Ok(p);
    }
    let venv = toolchains_dir().join("python");
    let tool = venv.join("bin/componentize-py");
    if tool.is_file() {
        return Ok(tool);
    }
    let fail = toolchain_failure("componentize-py", "Python");
    progress(&format!(
        "installing {COMPONENTIZE_PY} into {} (once)",
        venv.display()
    ));
    let python = on_path("python3")
        .or_else(|| on_path("python"))
        .ok_or_else(|| fail("no python3 on PATH".into()))?;
    run(Command::new(python).args(["-m", "venv"]).arg(&venv)).map_err(|e| fail(e.to_string()))?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        COMPONENTIZE_PY,
    ]))
    .map_err(|e| fail(e.to_string()))?;
    Ok(tool)
}

/// The `jco` entry script, installing jco and componentize-js with npm into
/// a private directory when missing.
pub fn jco(progress: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let dir = toolchains_dir().join("js");
    let script = dir.join("node_modules/@bytecodealliance/jco/dist/jco.js");
    if script.is_file() {
        return Ok(script);
    }
    let fail = toolchain_failure("jco", "JavaScript");
    if on_path("node").is_none() {
        return Err(fail("no node on PATH (install Node.js 18 or newer)".into()));
    }
    let npm = on_path("npm").ok_or_else(|| fail("no npm on PATH".into()))?;
    progress(&format!(
        "installing {JCO} and {COMPONENTIZE_JS} into {} (once)",
        dir.display()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    if !dir.join("package.json").is_file() {
        std::fs::write(
            dir.join("package.json"),
            "{\"name\":\"thermoroute-js-toolchain\",\"private\":true}\n",
        )
        .map_err(|e| fail(e.to_string()))?;
    }
    run(Command::new(npm).current_dir(&dir).args([
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        JCO,
        COMPONENTIZE_JS,
    ]))
    .map_err(|e| fail(e.to_string()))?;
    if script.is_file() {
        Ok(script)
    } else {
        Err(fail(format!(
            "npm finished but {} is missing",
            script.display()
        )))
    }
}

/// Reads `DIR/plugin.toml`.
pub fn read_spec(dir: &Path) -> Result<BuildSpec, BuildError> {
    let path = dir.join("plugin.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| BuildError::Manifest {
        path: path.clone(),
        detail: format!(
            "{e} (a plugin directory has a plugin.toml; `thermoroute plugin new` writes one)"
        ),
    })?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| BuildError::Manifest {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    manifest.plugin.ok_or_else(|| BuildError::Manifest {
        path,
        detail: "no [plugin] table (lang, world)".into(),
    })
}

/// Builds the plugin in `dir` into `DIR/target/NAME.wasm` (with its limits
/// in `NAME.toml` beside it) and returns the component's path.
pub fn build(dir: &Path, progress: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let spec = read_spec(dir)?;
    let dir = dir.canonicalize().map_err(io(dir))?;
    let name = plugin_name(&dir);
    let out_dir = dir.join("target");
    std::fs::create_dir_all(&out_dir).map_err(io(&out_dir))?;
    let out = out_dir.join(format!("{name}.wasm"));
    let wit = dir.join(&spec.wit);
    match spec.lang {
        Lang::Rust => {
            // Idempotent; absent rustup means a toolchain managed otherwise.
            if on_path("rustup").is_some() {
                progress("rustup target add wasm32-wasip2");
                run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))?;
            }
            progress("cargo build --release --target wasm32-wasip2");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            run(Command::new(cargo)
                .current_dir(&dir)
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                    "--target-dir",
                ])
                .arg(&out_dir)
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS"))?;
            let crate_name = crate_name(&dir)?.replace('-', "_");
            let artifact = out_dir.join(format!("wasm32-wasip2/release/{crate_name}.wasm"));
            if !artifact.is_file() {
                return Err(BuildError::NoArtifact(artifact));
            }
            std::fs::copy(&artifact, &out).map_err(io(&out))?;
        }
        Lang::Python => {
            let tool = componentize_py(progress)?;
            let module = spec.module.clone().unwrap_or_else(|| "app".into());
            progress("componentize-py componentize");
            run(Command::new(tool)
                .current_dir(&dir)
                .arg("-d")
                .arg(&wit)
                .args(["-w", &spec.world, "componentize", "-p"])
                .arg(&dir)
                .arg(&module)
                .arg("-o")
                .arg(&out))?;
        }
        Lang::Js => {
            let script = jco(progress)?;
            let entry = spec.entry.clone().unwrap_or_else(|| "plugin.js".into());
            progress("jco componentize (QuickJS engine)");
            // QuickJS: small and flat in memory (StarlingMonkey leaks per call).
            run(Command::new("node")
                .current_dir(&dir)
                .arg(script)
                .arg("componentize")
                .arg(dir.join(&entry))
                .arg("--wit")
                .arg(&wit)
                .args([
                    "-n",
                    &spec.world,
                    "--backend",
                    "qjs",
                    "--backend-qjs-disable-async",
                    "-o",
                ])
                .arg(&out))?;
        }
        Lang::C | Lang::Cpp => {
            let compiler = clang::clang(spec.lang, progress)?;
            let gen_dir = out_dir.join("bindings");
            progress(&format!(
                "C bindings for {} (wit-bindgen, in process)",
                spec.world
            ));
            let generated = clang::bindings(&wit, &spec.world, &gen_dir)?;
            let sources = clang::sources(&dir, spec.lang, spec.sources.as_deref())?;
            progress(&format!(
                "{} --target=wasm32-wasi -O2 ({} files)",
                compiler.display(),
                sources.len()
            ));
            let core = out_dir.join(format!("{name}.core.wasm"));
            clang::compile(
                &compiler,
                spec.lang,
                &dir,
                &sources,
                &gen_dir,
                &generated,
                spec.cflags.as_deref().unwrap_or_default(),
                &core,
            )?;
            progress("component encoding (wit-component, in process)");
            clang::componentize(&core, &out)?;
        }
    }
    if !out.is_file() {
        return Err(BuildError::NoArtifact(out));
    }
    let manifest = out.with_extension("toml");
    std::fs::copy(dir.join("plugin.toml"), &manifest).map_err(io(&manifest))?;
    Ok(out)
}

/// The component `build` would write for the plugin in `dir`, built only
/// when it is missing or older than a file of the plugin's sources
/// (anything under `dir` but `target/`, `node_modules/` and hidden
/// entries): what a what-if policy variant naming a plugin directory uses.
pub fn build_cached(dir: &Path, progress: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    read_spec(dir)?;
    let canonical = dir.canonicalize().map_err(io(dir))?;
    let out = canonical
        .join("target")
        .join(format!("{}.wasm", plugin_name(&canonical)));
    let built = std::fs::metadata(&out).and_then(|m| m.modified()).ok();
    if let Some(built) = built
        && newest_source(&canonical)?.is_none_or(|newest| newest <= built)
    {
        return Ok(out);
    }
    build(dir, progress)
}

/// The latest modification time of the plugin's source files.
fn newest_source(dir: &Path) -> Result<Option<std::time::SystemTime>, BuildError> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || (d == dir && name == "target") || name == "node_modules" {
                continue;
            }
            let meta = entry.metadata().map_err(io(&entry.path()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if let Ok(t) = meta.modified() {
                newest = newest.max(Some(t));
            }
        }
    }
    Ok(newest)
}

fn crate_name(dir: &Path) -> Result<String, BuildError> {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| BuildError::Manifest {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    doc.get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .ok_or(BuildError::Manifest {
            path,
            detail: "no [package] name".into(),
        })
}

/// A crate or file name from a directory name.
pub fn plugin_name(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    match clean.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => clean,
        _ => format!("plugin-{clean}"),
    }
}

/// Writes a working template into `dir` (which must be new or empty).
pub fn new_plugin(dir: &Path, lang: Lang, role: Role) -> Result<Vec<PathBuf>, BuildError> {
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(BuildError::Exists(dir.to_path_buf()));
    }
    let name = plugin_name(dir);
    let mut written = Vec::new();
    for (rel, text) in templates::files(lang, role, &name) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

//! C and C++ plugins: the bindings come from wit-bindgen's C generator and
//! the component from wit-component, both linked into this binary, so the
//! only outside tools are clang and wasm-ld with a wasm32-wasi C library
//! (Debian: `clang-19`, `lld-19`, `wasi-libc`, `libclang-rt-19-dev-wasm32`,
//! plus `libc++-19-dev-wasm32` and `libc++abi-19-dev-wasm32` for C++).
//!
//! A guest that calls only memory and string functions links no WASI at all
//! and becomes a zero-import component; one that reaches WASI (stdio, a
//! C++ runtime's abort path) goes through the WASI preview-1 reactor adapter
//! of the wasmtime release this host embeds, and the sandbox answers those
//! imports as it does for every guest.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::lang::Lang;
use super::process::{BuildError, io, on_path, run, toolchain_failure};

/// The Debian packages a C plugin builds with.
pub const C_PACKAGES: [&str; 4] = [
    "clang-19",
    "lld-19",
    "wasi-libc",
    "libclang-rt-19-dev-wasm32",
];
/// The further Debian packages a C++ plugin needs (the C++ standard library).
pub const CPP_PACKAGES: [&str; 2] = ["libc++-19-dev-wasm32", "libc++abi-19-dev-wasm32"];

/// The target triple: WASI preview 1 is what Debian's `wasi-libc`
/// (2022-05) is built for; the component comes from wit-component after.
const TARGET: &str = "--target=wasm32-wasi";

/// What the toolchain must find for `lang`: the C library (and the C++ one).
fn required_libs(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::Cpp => &["libc.a", "libc++.a", "libc++abi.a"],
        _ => &["libc.a"],
    }
}

/// Whether `clang` finds every library `lang` needs for wasm32-wasi, and
/// compiler-rt's builtins. Returns what is missing.
fn missing(clang: &Path, lang: Lang) -> Vec<String> {
    let mut gaps = Vec::new();
    let query = |arg: &str| -> Option<PathBuf> {
        let out = Command::new(clang).args([TARGET, arg]).output().ok()?;
        out.status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    };
    for lib in required_libs(lang) {
        // An unfound library comes back as its bare name.
        match query(&format!("-print-file-name={lib}")) {
            Some(p) if p.is_absolute() && p.is_file() => {}
            _ => gaps.push(format!("{lib} for wasm32-wasi")),
        }
    }
    match query("-print-libgcc-file-name") {
        Some(p) if p.is_file() => {}
        _ => gaps.push("compiler-rt builtins for wasm32".into()),
    }
    gaps
}

/// The clang that builds `lang` plugins: `THERMOROUTE_CLANG`, else
/// `clang-19` on PATH; installed with apt-get on first use when it or a
/// wasm32-wasi library is missing.
pub fn clang(lang: Lang, progress: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let tool: &'static str = "clang";
    let fail = toolchain_failure(tool, lang.title());
    if let Some(p) = std::env::var_os("THERMOROUTE_CLANG") {
        let p = PathBuf::from(p);
        let gaps = missing(&p, lang);
        if gaps.is_empty() {
            return Ok(p);
        }
        return Err(fail(format!(
            "THERMOROUTE_CLANG={} lacks {}",
            p.display(),
            gaps.join(", ")
        )));
    }
    let found = on_path("clang-19");
    if let Some(p) = &found
        && missing(p, lang).is_empty()
    {
        return Ok(p.clone());
    }
    let mut packages: Vec<&str> = C_PACKAGES.to_vec();
    if lang == Lang::Cpp {
        packages.extend(CPP_PACKAGES);
    }
    let hint = format!("apt-get install {}", packages.join(" "));
    let apt = on_path("apt-get").ok_or_else(|| {
        fail(format!(
            "no clang-19 with a wasm32-wasi C library; install one ({hint}, or a wasi-sdk) and set THERMOROUTE_CLANG"
        ))
    })?;
    progress(&format!(
        "installing {} with apt-get (once)",
        packages.join(" ")
    ));
    let install = || {
        run(Command::new(&apt)
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "-o",
                "Dpkg::Use-Pty=0",
            ])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    if install().is_err() {
        // A fresh machine has no package lists yet.
        run(Command::new(&apt).args(["update", "-qq"]))
            .map_err(|e| fail(format!("{e}\n(run as root, or: {hint})")))?;
        install().map_err(|e| fail(format!("{e}\n(run as root, or: {hint})")))?;
    }
    let p = on_path("clang-19")
        .ok_or_else(|| fail("apt-get finished but clang-19 is not on PATH".into()))?;
    let gaps = missing(&p, lang);
    if gaps.is_empty() {
        Ok(p)
    } else {
        Err(fail(format!(
            "after {hint}: clang-19 still lacks {}",
            gaps.join(", ")
        )))
    }
}

/// Writes the C bindings of `world` (from the WIT at `wit`) into `out`:
/// `WORLD.h`, `WORLD.c` and `WORLD_component_type.o`, which carries the
/// component type into the linked module. Returns the files written.
pub fn bindings(wit: &Path, world: &str, out: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let manifest = |detail: String| BuildError::Manifest {
        path: wit.to_path_buf(),
        detail,
    };
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .map_err(|e| manifest(format!("{e:#}")))?;
    let id = resolve
        .select_world(&[package], Some(world))
        .map_err(|e| manifest(format!("{e:#}")))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, id, &mut files)
        .map_err(|e| manifest(format!("generating C bindings: {e:#}")))?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut written = Vec::new();
    for (name, bytes) in files.iter() {
        let path = out.join(name);
        // Unchanged bindings keep their time stamps (make-friendly).
        if std::fs::read(&path).ok().as_deref() != Some(bytes) {
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
        written.push(path);
    }
    Ok(written)
}

/// The plugin's own sources: `sources` from plugin.toml, else every `.c`
/// (and for C++ every `.cpp`, `.cc`, `.cxx`) file at the top of `dir`.
pub fn sources(
    dir: &Path,
    lang: Lang,
    listed: Option<&[String]>,
) -> Result<Vec<PathBuf>, BuildError> {
    if let Some(list) = listed {
        return Ok(list.iter().map(|s| dir.join(s)).collect());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && source_lang(p, lang).is_some())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(BuildError::Manifest {
            path: dir.join("plugin.toml"),
            detail: format!(
                "no {} sources in {} (list them as `sources = [...]` under [plugin])",
                lang.title(),
                dir.display()
            ),
        });
    }
    Ok(found)
}

/// C or C++, by extension; C++ files only in a C++ plugin.
fn source_lang(path: &Path, plugin: Lang) -> Option<Lang> {
    match path.extension()?.to_str()? {
        "c" => Some(Lang::C),
        "cpp" | "cc" | "cxx" if plugin == Lang::Cpp => Some(Lang::Cpp),
        _ => None,
    }
}

/// Compiles and links `sources` with the generated bindings in `gen_dir`
/// into a core module at `core`.
pub fn compile(
    clang: &Path,
    lang: Lang,
    dir: &Path,
    sources: &[PathBuf],
    gen_dir: &Path,
    generated: &[PathBuf],
    cflags: &[String],
    core: &Path,
) -> Result<(), BuildError> {
    let obj_dir = core.with_extension("obj");
    std::fs::create_dir_all(&obj_dir).map_err(io(&obj_dir))?;
    let mut objects = Vec::new();
    let generated_c = generated
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "c"));
    for (i, src) in sources.iter().chain(generated_c).enumerate() {
        let as_cpp = source_lang(src, lang) == Some(Lang::Cpp);
        let obj = obj_dir.join(format!(
            "{i}-{}.o",
            src.file_stem().unwrap_or_default().to_string_lossy()
        ));
        let mut cmd = Command::new(clang);
        cmd.current_dir(dir).args([TARGET, "-c", "-O2", "-Wall"]);
        if as_cpp {
            cmd.args([
                "--driver-mode=g++",
                "-std=c++20",
                "-fno-exceptions",
                "-fno-rtti",
            ]);
        } else {
            cmd.arg("-std=c17");
        }
        cmd.arg("-I")
            .arg(gen_dir)
            .arg("-I")
            .arg(dir)
            .args(cflags)
            .arg(src)
            .arg("-o")
            .arg(&obj);
        run(&mut cmd)?;
        objects.push(obj);
    }
    let mut link = Command::new(clang);
    link.current_dir(dir)
        .args([TARGET, "-mexec-model=reactor", "-O2"]);
    if lang == Lang::Cpp {
        link.args(["--driver-mode=g++", "-fno-exceptions", "-fno-rtti"]);
    }
    link.args(&objects)
        // The component type rides in a custom section of this object.
        .args(
            generated
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "o")),
        )
        .arg("-Wl,--strip-debug")
        .arg("-o")
        .arg(core);
    run(&mut link)
}

/// Encodes a core module (with its component-type section) as a component.
pub fn componentize(core: &Path, out: &Path) -> Result<(), BuildError> {
    let bytes = std::fs::read(core).map_err(io(core))?;
    let failed = |e: anyhow::Error| BuildError::Failed {
        command: format!("encoding {} as a component", core.display()),
        status: "wit-component".into(),
        output: format!("{e:#}"),
    };
    let mut encoder = wit_component::ComponentEncoder::default();
    encoder.validate(true);
    encoder.module(&bytes).map_err(failed)?;
    // Used only when the module imports WASI preview 1.
    encoder
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(failed)?;
    let component = encoder.encode().map_err(failed)?;
    std::fs::write(out, component).map_err(io(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::authoring::lang::POLICY_WIT_V0_1 as POLICY_WIT;

    #[test]
    fn bindings_declare_each_roles_export_and_carry_the_component_type() {
        let tmp = tempfile::tempdir().unwrap();
        let wit = tmp.path().join("wit");
        std::fs::create_dir_all(&wit).unwrap();
        std::fs::write(wit.join("policy.wit"), POLICY_WIT).unwrap();
        for (world, stem, export) in [
            (
                "cost-plugin",
                "cost_plugin",
                "exports_thermoroute_policy_cost_model_score(",
            ),
            (
                "eligibility-plugin",
                "eligibility_plugin",
                "exports_thermoroute_policy_eligibility_verdict(",
            ),
            (
                "gate-plugin",
                "gate_plugin",
                "exports_thermoroute_policy_gate_decide(",
            ),
        ] {
            let out = tmp.path().join(world);
            let files = bindings(&wit, world, &out).unwrap();
            let names: Vec<String> = files
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            for want in [
                format!("{stem}.h"),
                format!("{stem}.c"),
                format!("{stem}_component_type.o"),
            ] {
                assert!(names.contains(&want), "{world}: {names:?}");
            }
            let header = std::fs::read_to_string(out.join(format!("{stem}.h"))).unwrap();
            assert!(header.contains(export), "{world}");
            let object = std::fs::read(out.join(format!("{stem}_component_type.o"))).unwrap();
            assert!(object.starts_with(b"\0asm"), "{world}: a wasm object");
        }
        let err = bindings(&wit, "price-plugin", &tmp.path().join("x")).unwrap_err();
        assert!(
            matches!(&err, BuildError::Manifest { detail, .. } if detail.contains("price-plugin")),
            "{err}"
        );
    }

    #[test]
    fn sources_default_to_the_languages_files_at_the_top() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for f in ["b.c", "a.cpp", "notes.txt", "c.h"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        std::fs::create_dir(dir.join("sub.c")).unwrap();
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(sources(dir, Lang::C, None).unwrap()), ["b.c"]);
        assert_eq!(
            names(sources(dir, Lang::Cpp, None).unwrap()),
            ["a.cpp", "b.c"]
        );
        let listed = ["x.c".to_string()];
        assert_eq!(
            sources(dir, Lang::C, Some(&listed)).unwrap(),
            [dir.join("x.c")]
        );
        let empty = tempfile::tempdir().unwrap();
        let err = sources(empty.path(), Lang::C, None).unwrap_err();
        assert!(err.to_string().contains("no C sources"), "{err}");
    }
}

//! Errors of `plugin new` / `plugin build`, and running the tools a build
//! calls.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A plugin that could not be created or built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `plugin.toml` or `Cargo.toml` is missing or malformed.
    #[error("{path}: {detail}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// `plugin new` has no template for this language and role.
    #[error(
        "no {lang} template for the {role} role; queue roles have Rust, Python and JavaScript templates"
    )]
    NoTemplate {
        /// The language.
        lang: &'static str,
        /// The role.
        role: &'static str,
    },
    /// `plugin new` was pointed at a directory that already has files.
    #[error("{0} already exists and is not empty; pick a new directory")]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A guest toolchain is missing and could not be installed.
    #[error("{tool} is needed to build {lang} plugins and could not be installed: {detail}")]
    Toolchain {
        /// The tool.
        tool: &'static str,
        /// The language it builds.
        lang: &'static str,
        /// Why it could not be installed.
        detail: String,
    },
    /// A build step exited with an error.
    #[error("`{command}` failed ({status}):\n{output}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The last lines of its output.
        output: String,
    },
    /// The build succeeded but left no component where it should be.
    #[error("the build produced no component (looked for {0})")]
    NoArtifact(PathBuf),
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs a command, keeping its output for the error.
pub(super) fn run(cmd: &mut Command) -> Result<(), BuildError> {
    let described = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| BuildError::Failed {
        command: described.clone(),
        status: "did not start".into(),
        output: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    Err(BuildError::Failed {
        command: described,
        status: out.status.to_string(),
        output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

pub(super) fn toolchain_failure(
    tool: &'static str,
    lang: &'static str,
) -> impl Fn(String) -> BuildError {
    move |detail| BuildError::Toolchain { tool, lang, detail }
}

pub(super) fn on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

//! The languages a plugin can be written in and the guest toolchains each
//! one builds with.

use serde::{Deserialize, Serialize};

/// The WIT package (`thermoroute:policy@0.2.0`), embedded so templates are
/// self-contained.
pub const POLICY_WIT: &str = include_str!("../../../../wit/policy.wit");
/// The frozen 0.1.0 package, which C and C++ templates still build against.
pub const POLICY_WIT_V0_1: &str = include_str!("../../../../wit/0.1.0/policy.wit");

/// Pinned componentize-py (measured in `../shared/TOOLCHAIN.md`).
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.*";
/// Pinned jco.
pub const JCO: &str = "@bytecodealliance/jco@1.35.0";
/// Pinned componentize-js.
pub const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";
/// The wit-bindgen version Rust templates depend on.
pub const WIT_BINDGEN: &str = "0.61";

/// A plugin source language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, built with cargo for `wasm32-wasip2`.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with jco and componentize-js.
    Js,
    /// C, built with clang for wasm32-wasi (bindings and component encoding
    /// in process).
    C,
    /// C++, like C with the C bindings and libc++.
    Cpp,
}

impl Lang {
    /// The name `plugin.toml` and `plugin new --lang` use.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
            Lang::Cpp => "cpp",
        }
    }

    /// The name people call it.
    pub fn title(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
            Lang::C => "C",
            Lang::Cpp => "C++",
        }
    }
}

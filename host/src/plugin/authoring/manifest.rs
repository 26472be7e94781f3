//! `plugin.toml`, and its copy `NAME.toml` beside a built `NAME.wasm`.

use serde::{Deserialize, Serialize};

use super::lang::Lang;
use crate::plugin::limits::PluginLimits;

/// `[plugin]` in a plugin directory's `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// The source language.
    pub lang: Lang,
    /// The WIT world it implements (`cost-plugin`, `gate-plugin`, ...).
    pub world: String,
    /// The WIT directory, relative to the plugin directory.
    #[serde(default = "default_wit")]
    pub wit: String,
    /// Python: the module that defines the export classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// JavaScript: the entry file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// C and C++: the source files, relative to the plugin directory
    /// (default: every `.c` / `.cpp` / `.cc` / `.cxx` file at its top).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    /// C and C++: extra compiler flags (`-DPENALTY=2`, `-Os`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cflags: Option<Vec<String>>,
}

fn default_wit() -> String {
    "wit".into()
}

/// The manifest beside a component (`NAME.toml`), or a plugin source
/// directory's `plugin.toml`: how to build it and the limits it runs under.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    #[serde(default)]
    pub plugin: Option<BuildSpec>,
    #[serde(default)]
    pub limits: PluginLimits,
}

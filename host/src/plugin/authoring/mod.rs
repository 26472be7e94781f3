//! Plugin authoring: `thermoroute plugin new` and `plugin build`.
//!
//! Imports point one way only: `lang` (languages, pinned toolchains, the
//! embedded WIT), `manifest` (`plugin.toml`) and `process` (errors, running
//! tools) at the bottom, `templates` and `clang` (C and C++: bindings,
//! compiling, component encoding) on top of them, `build` on top of all.

mod build;
mod clang;
mod lang;
mod manifest;
mod process;
mod queue_templates;
mod templates;

pub use build::{
    BuildError, build, build_cached, componentize_py, jco, new_plugin, plugin_name, read_spec,
    toolchains_dir,
};
pub use clang::{C_PACKAGES, CPP_PACKAGES};
pub use lang::{COMPONENTIZE_JS, COMPONENTIZE_PY, JCO, Lang, POLICY_WIT, WIT_BINDGEN};
pub use manifest::BuildSpec;
pub(crate) use manifest::Manifest;
pub use queue_templates::{POLICY_WIT_0_2, files as queue_template_files, new_queue_plugin};
pub use templates::cases as template_cases;
pub use templates::files as template_files;

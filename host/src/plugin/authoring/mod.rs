//! Plugin authoring: `thermoroute plugin new` and `plugin build`.
//!
//! Imports point one way only: `lang` (languages, pinned toolchains, the
//! embedded WIT) and `manifest` (`plugin.toml`) at the bottom, `templates`
//! on top of them, `build` on top of all three.

mod build;
mod lang;
mod manifest;
mod templates;

pub use build::{
    BuildError, build, build_cached, componentize_py, jco, new_plugin, plugin_name, read_spec,
    toolchains_dir,
};
pub use lang::{COMPONENTIZE_JS, COMPONENTIZE_PY, JCO, Lang, POLICY_WIT, WIT_BINDGEN};
pub use manifest::BuildSpec;
pub(crate) use manifest::Manifest;
pub use templates::files as template_files;

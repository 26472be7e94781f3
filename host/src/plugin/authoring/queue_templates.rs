//! What `thermoroute plugin new --role queue-order|admit|preempt` writes: a
//! working plugin of a WIT 0.2 queue role in Rust, Python or JavaScript,
//! with the 0.2 package beside it so the directory stands alone.

use std::path::{Path, PathBuf};

use super::lang::{Lang, WIT_BINDGEN};
use super::process::BuildError;
use crate::plugin::queue_world::QueueRole;

/// `thermoroute:policy@0.2.0`, embedded so templates are self-contained.
pub const POLICY_WIT_0_2: &str = include_str!("../../../../wit/policy.wit");

const RUST_QUEUE_ORDER: &str = include_str!("../../../../plugins/queue-order-rust/src/lib.rs");
const RUST_ADMIT: &str = include_str!("../../../../plugins/admit-rust/src/lib.rs");
const RUST_PREEMPT: &str = include_str!("../../../../plugins/preempt-rust/src/lib.rs");
const PY_ADMIT: &str = include_str!("../../../../plugins/admit-python/app.py");
const JS_PREEMPT: &str = include_str!("../../../../plugins/preempt-js/plugin.js");

const PY_QUEUE_ORDER: &str = r#""""A queue order: earliest deadline first; work without a deadline after
it, first come first served."""

from wit_world import exports


class QueueOrder(exports.QueueOrder):
    def order(self, queue):
        def key(i):
            t = queue.waiting[i]
            deadline = t.deadline_ms if t.deadline_ms is not None else float("inf")
            return (deadline, t.enqueued_ms)

        return sorted(range(len(queue.waiting)), key=key)
"#;

const PY_PREEMPT: &str = r#""""Preemption: an interactive arrival on a full device preempts the
preemptible batch task that started last (the least work lost)."""

from wit_world import exports
from wit_world.imports.types import Priority


class Preempt(exports.Preempt):
    def victims(self, arriving, queue):
        if arriving.priority != Priority.INTERACTIVE or queue.free_slots > 0:
            return []
        batch = [t for t in queue.running if t.preemptible and t.priority == Priority.BATCH]
        if not batch:
            return []
        return [max(batch, key=lambda t: t.enqueued_ms).id]
"#;

const JS_QUEUE_ORDER: &str = r#"// A queue order: earliest deadline first; work without a deadline after
// it, first come first served. Record fields arrive in camelCase; an absent
// option is undefined.

export const queueOrder = {
  order(queue) {
    const key = (t) => (t.deadlineMs == null ? Infinity : t.deadlineMs);
    return queue.waiting
      .map((t, i) => i)
      .sort((a, b) => {
        const [x, y] = [queue.waiting[a], queue.waiting[b]];
        return key(x) - key(y) || x.enqueuedMs - y.enqueuedMs || a - b;
      });
  },
};
"#;

const JS_ADMIT: &str = r#"// Admission: interactive work is always accepted; batch work while fewer
// than half the queue's places are taken, else rejected with a retry-after
// of the time the queued work should take to drain.

export const admit = {
  decide(arriving, queue) {
    if (arriving.priority === "interactive") return { tag: "accept" };
    if (2 * queue.waiting.length < Math.max(queue.limit, 1)) return { tag: "accept" };
    const queuedMs = queue.waiting.reduce((s, t) => s + t.serviceMs, 0);
    return {
      tag: "reject",
      val: {
        reason: `${queue.waiting.length} of ${queue.limit} queue places taken: batch work waits for the queue to drain`,
        retryAfterMs: queuedMs / Math.max(queue.slots, 1),
      },
    };
  },
};
"#;

/// A committed Rust guest as a template: its code under its own doc, with
/// the bindings generated from the template's `wit/`.
fn rust(example: &str, world: &str) -> String {
    let (doc, rest) = example
        .split_once("\n\n")
        .expect("the example opens with its doc");
    let (_generate, code) = rest
        .split_once("\n\n")
        .expect("the bindings come before the code");
    format!("{doc}\n\nwit_bindgen::generate!({{ path: \"wit\", world: \"{world}\" }});\n\n{code}")
}

/// (relative path, contents) of every file of a new queue-role plugin.
pub fn files(lang: Lang, role: QueueRole, name: &str) -> Result<Vec<(String, String)>, BuildError> {
    let world = role.world();
    let (entry, body, entry_key) = match (lang, role) {
        (Lang::Rust, QueueRole::QueueOrder) => ("src/lib.rs", rust(RUST_QUEUE_ORDER, world), ""),
        (Lang::Rust, QueueRole::Admit) => ("src/lib.rs", rust(RUST_ADMIT, world), ""),
        (Lang::Rust, QueueRole::Preempt) => ("src/lib.rs", rust(RUST_PREEMPT, world), ""),
        (Lang::Python, QueueRole::QueueOrder) => {
            ("app.py", PY_QUEUE_ORDER.to_string(), "module = \"app\"\n")
        }
        (Lang::Python, QueueRole::Admit) => ("app.py", PY_ADMIT.to_string(), "module = \"app\"\n"),
        (Lang::Python, QueueRole::Preempt) => {
            ("app.py", PY_PREEMPT.to_string(), "module = \"app\"\n")
        }
        (Lang::Js, QueueRole::QueueOrder) => (
            "plugin.js",
            JS_QUEUE_ORDER.to_string(),
            "entry = \"plugin.js\"\n",
        ),
        (Lang::Js, QueueRole::Admit) => {
            ("plugin.js", JS_ADMIT.to_string(), "entry = \"plugin.js\"\n")
        }
        (Lang::Js, QueueRole::Preempt) => (
            "plugin.js",
            JS_PREEMPT.to_string(),
            "entry = \"plugin.js\"\n",
        ),
        (Lang::C | Lang::Cpp, _) => {
            return Err(BuildError::NoTemplate {
                lang: lang.title(),
                role: role.name(),
            });
        }
    };
    let mut files = vec![
        (
            "plugin.toml".to_string(),
            format!(
                "# A thermoroute {role} plugin ({lang}, WIT 0.2).\n\
                 #   thermoroute plugin build .                  -> target/{name}.wasm\n\
                 #   thermoroute plugin check target/{name}.wasm\n\
                 #   thermoroute run GRAPH.json --{role} target/{name}.wasm\n\
                 [plugin]\n\
                 lang = \"{lang}\"\n\
                 world = \"{world}\"\n\
                 wit = \"wit\"\n\
                 {entry_key}\n\
                 # Sandbox limits (defaults shown): fuel and memory per call.\n\
                 [limits]\n\
                 fuel_per_call = 20000000\n\
                 memory_mib = {memory}\n",
                role = role.name(),
                lang = lang.name(),
                memory = if lang == Lang::Python { 128 } else { 64 },
            ),
        ),
        ("wit/policy.wit".to_string(), POLICY_WIT_0_2.to_string()),
        (entry.to_string(), body),
    ];
    if lang == Lang::Rust {
        files.push((
            "Cargo.toml".to_string(),
            format!(
                "[package]\n\
                 name = \"{name}\"\n\
                 version = \"0.1.0\"\n\
                 edition = \"2024\"\n\
                 publish = false\n\n\
                 [lib]\n\
                 crate-type = [\"cdylib\"]\n\n\
                 [dependencies]\n\
                 wit-bindgen = \"{WIT_BINDGEN}\"\n\n\
                 [profile.release]\n\
                 opt-level = \"s\"\n\
                 strip = true\n\n\
                 # Stand-alone, whatever workspace encloses it.\n\
                 [workspace]\n"
            ),
        ));
    }
    Ok(files)
}

/// Writes a working queue-role template into `dir` (which must be new or
/// empty).
pub fn new_queue_plugin(
    dir: &Path,
    lang: Lang,
    role: QueueRole,
) -> Result<Vec<PathBuf>, BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(BuildError::Exists(dir.to_path_buf()));
    }
    let name = super::build::plugin_name(dir);
    let mut written = Vec::new();
    for (rel, text) in files(lang, role, &name)? {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_queue_role_has_a_template_in_rust_python_and_js() {
        for role in QueueRole::ALL {
            for lang in [Lang::Rust, Lang::Python, Lang::Js] {
                let files = files(lang, role, "p").unwrap();
                let toml = &files[0].1;
                assert!(
                    toml.contains(&format!("world = \"{}\"", role.world())),
                    "{toml}"
                );
                assert!(files[1].1.contains("package thermoroute:policy@0.2.0;"));
                let entry = &files[2].1;
                let export = match (lang, role) {
                    (Lang::Rust, _) => "export!(Plugin);",
                    (Lang::Python, QueueRole::QueueOrder) => "class QueueOrder(exports.QueueOrder)",
                    (Lang::Python, QueueRole::Admit) => "class Admit(exports.Admit)",
                    (Lang::Python, QueueRole::Preempt) => "class Preempt(exports.Preempt)",
                    (Lang::Js, QueueRole::QueueOrder) => "export const queueOrder",
                    (Lang::Js, QueueRole::Admit) => "export const admit",
                    (Lang::Js, QueueRole::Preempt) => "export const preempt",
                    _ => unreachable!(),
                };
                assert!(entry.contains(export), "{lang:?} {role:?}: {entry}");
                if lang == Lang::Rust {
                    let generate = format!(
                        "wit_bindgen::generate!({{ path: \"wit\", world: \"{}\" }});",
                        role.world()
                    );
                    assert!(entry.contains(&generate), "{entry}");
                    assert!(!entry.contains("../../wit"), "{entry}");
                }
            }
            assert!(matches!(
                files(Lang::C, role, "p"),
                Err(BuildError::NoTemplate { .. })
            ));
        }
    }
}

"""Self-test of layer_check.py on small generated workspaces.

Run: python3 -m unittest scripts/test_layer_check.py
"""

import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "layer_check.py"


def write_tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def run_check(files):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tree(root, {
            "Cargo.toml": '[workspace]\nmembers = ["demo"]\n',
            "demo/Cargo.toml": '[package]\nname = "demo-crate"\n',
            **files,
        })
        done = subprocess.run(
            [sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=60
        )
        return done.returncode, done.stdout + done.stderr


class LayerCheckTest(unittest.TestCase):
    def test_two_file_circle_fails_and_names_the_lines(self):
        code, out = run_check({
            "demo/src/lib.rs": "mod x;\nmod y;\n",
            "demo/src/x.rs": "use crate::y::Y;\npub struct X;\n",
            "demo/src/y.rs": "pub struct Y;\npub fn make() -> crate::x::X { crate::x::X }\n",
        })
        self.assertEqual(code, 1, out)
        self.assertIn("demo/src/x.rs -> demo/src/y.rs -> demo/src/x.rs", out)
        self.assertIn("demo/src/x.rs:1: use crate::y::Y;", out)
        self.assertIn("demo/src/y.rs:2: pub fn make() -> crate::x::X", out)
        self.assertIn("demo_crate::x -> demo_crate::y -> demo_crate::x", out)

    def test_clean_tree_passes(self):
        code, out = run_check({
            "demo/src/lib.rs": "pub mod a;\nmod b;\npub use a::Thing;\n",
            # Children reading their parent's items is not a circle.
            "demo/src/a/mod.rs": "mod inner;\npub use inner::Thing;\npub struct Shared;\n",
            "demo/src/a/inner.rs": """
                use super::Shared;
                use crate::{
                    b::{self, Helper},
                };
                pub struct Thing(Shared, Helper);
                #[cfg(test)]
                mod tests {
                    use super::*;
                }
            """,
            # Paths in comments and strings are not imports.
            "demo/src/b.rs": """
                // crate::a::Thing
                pub struct Helper;
                pub const TEXT: &str = "crate::a::Thing";
                pub const RAW: &str = r#"use crate::a::Thing;"#;
            """,
        })
        self.assertEqual(code, 0, out)
        self.assertIn("layer check ok", out)

    def test_circle_between_top_level_modules_only(self):
        code, out = run_check({
            "demo/src/lib.rs": "mod p;\nmod r;\n",
            "demo/src/p/mod.rs": "mod q;\npub struct P;\n",
            "demo/src/p/q.rs": "fn f(_: crate::r::R) {}\n",
            "demo/src/r.rs": "pub struct R(crate::p::P);\n",
        })
        self.assertEqual(code, 1, out)
        self.assertIn("0 circle(s) between file modules, 1 between top-level modules", out)


if __name__ == "__main__":
    unittest.main()

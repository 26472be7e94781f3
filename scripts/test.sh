#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need on a
# fresh machine, then checks formatting, lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Toolchain components used below (idempotent; no-ops when present).
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# Guest plugins compile to WebAssembly components (the tests' build script).
rustup target add wasm32-wasip2
# The GPU tests run on any wgpu adapter; without a GPU, Mesa's software
# Vulkan driver (lavapipe) is one.
if [ ! -d /usr/share/vulkan/icd.d ]; then
    apt-get update -qq && apt-get install -y -qq mesa-vulkan-drivers
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/thermoroute-xdg}"
mkdir -p "$XDG_RUNTIME_DIR"
# The terminal UI's end-to-end test drives the real binary inside tmux.
if ! command -v tmux >/dev/null; then
    apt-get update -qq && apt-get install -y -qq tmux
fi
# C and C++ plugins (tests/tests/suite/plugin_c.rs): clang 19 and Debian's
# wasi-libc, compiler-rt and libc++ for wasm32 (~30 s once; bindings and
# component encoding are built into thermoroute). `plugin build` would
# install the same on first use; doing it here keeps the tests' timings flat.
# make: the C++ template's Makefile is exercised too.
if ! command -v clang-19 >/dev/null || ! command -v make >/dev/null \
    || [ ! -f /usr/lib/wasm32-wasi/libc.a ] \
    || [ ! -f /usr/lib/wasm32-wasi/libc++.a ] \
    || [ ! -f /usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a ]; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 \
        libc++-19-dev-wasm32 libc++abi-19-dev-wasm32 make
fi

# The what-if CSV test reads the outputs with pandas as an analyst would.
python3 -c "import pandas" 2>/dev/null || pip install -q pandas 2>/dev/null \
    || pip install -q --break-system-packages pandas || true

cargo fmt --all -- --check
# No import circles between modules (file and top-level grain).
python3 -B -m unittest scripts/test_layer_check.py
python3 scripts/layer_check.py
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets

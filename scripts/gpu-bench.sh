#!/usr/bin/env bash
# GPU benchmark in one command, for a machine with a real GPU (or lavapipe):
# builds the release binary and prints spin updates/s of the WGSL Gibbs
# sampler on ±J lattices with the adapter's name. Under 5 minutes.
# One sample of every chain must fit the 64 MiB draws window (side² × chains × 4 bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/thermoroute-xdg}"
mkdir -p "$XDG_RUNTIME_DIR"
cargo build --release --bin thermoroute
./target/release/thermoroute bench --suite gpu --sizes "${SIZES:-256,512}" --chains "${CHAINS:-64}"

#!/usr/bin/env bash
# Side-by-side sampler benchmark: thermoroute vs thrml on the same periodic ±J
# lattices, same machine, one run. Installs thrml from PyPI if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import thrml" 2>/dev/null || pip install -q thrml==0.1.4
cargo build --release -q
echo "== thermoroute (CPU, chains run one per thread)"
./target/release/thermoroute bench --sizes 64,256 --threads 1,2 --chains 2
echo "== thrml 0.1.4 (JAX CPU, jit + vmap over 2 chains)"
python3 bench/thrml_lattice.py --sizes 64,256 --chains 2 --updates 4e7
echo "== thermoroute scheduler, simulate mode (M/M/3, two priority classes, rho = 0.9)"
./target/release/thermoroute bench --suite scheduler --jobs 2000000
echo "== SimPy 4.1.2, the same M/M/3 model"
python3 -c "import simpy" 2>/dev/null || pip install -q simpy==4.1.2
python3 bench/simpy_mm3.py 400000

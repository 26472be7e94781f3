#!/usr/bin/env bash
# thermoroute beside its peers, same machine, one run, one table (issue 17):
# the Gibbs kernel on every CPU path vs thrml at its peak (JAX CPU, jit + vmap
# over 4-32 chains, compile excluded, best kept); `sample --json` end to end
# and its diagnostics + output vs ArviZ's bulk ESS + rank R-hat on the same
# draws; `run --mode simulate` of the M/M/3 example vs SimPy.
# Not part of the test command (it takes several minutes and measures speed).
#
#   bash scripts/bench-peers.sh [--quick]
#
# THERMOROUTE_BIN=path uses that release binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import thrml" 2>/dev/null || pip install -q thrml==0.1.4
python3 -c "import arviz_stats" 2>/dev/null || pip install -q arviz-stats==0.8.0
python3 -c "import simpy" 2>/dev/null || pip install -q simpy==4.1.2
bin=${THERMOROUTE_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p thermoroute
  bin="${CARGO_TARGET_DIR:-target}/release/thermoroute"
fi
exec python3 bench/peers.py --bin "$bin" "$@"

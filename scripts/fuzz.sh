#!/usr/bin/env bash
# Runs every fuzz target (cargo fuzz, libFuzzer) for a time budget each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 900 eprogram graph   # a longer run
#
# Each target runs until FUZZ_RUNS executions (default 1,000,000) or its
# time budget (default 150 s), whichever comes first: at most 15 minutes
# for the six, about 4 at the rates measured on the 2-core machine (README,
# "Fuzzing": 1 M executions take 14-80 s per target), plus the first build
# (about 3 minutes; fuzz/target is reused after). Not part of scripts/test.sh: the
# committed corpus and every crash found are replayed there instead
# (tests/tests/suite/fuzz_regressions.rs).
#
# Needs a nightly toolchain and cargo-fuzz; installs cargo-fuzz if missing.
# The targets compile the host's lower layers by path (fuzz/src/lib.rs), not
# wasmtime or wgpu. New corpus entries go to fuzz/corpus/<target>/
# (ignored by git except seed-*); a crash is written to
# fuzz/artifacts/<target>/ and the script exits non-zero: minimise it
# (`cargo +nightly fuzz tmin <target> <file>`), fix it, and commit it under
# tests/fuzz-regressions/<target>/.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
budget="${1:-150}"
runs="${FUZZ_RUNS:-1000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(eprogram graph hardware experiment trace tsu_compile)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

export CARGO_TARGET_DIR="$PWD/target"
# No AddressSanitizer: the fuzzed code is safe Rust (the workspace denies
# unsafe_code); debug assertions and overflow checks stay on.
cargo +nightly fuzz build -s none
bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

dict_for() {
  case "$1" in
    eprogram | graph | trace) echo "-dict=dicts/json.dict" ;;
    hardware | experiment) echo "-dict=dicts/toml.dict" ;;
    *) echo "" ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="artifacts/$t/last-run.log"
  # shellcheck disable=SC2046
  if "$bin/$t" $(dict_for "$t") -runs="$runs" -max_total_time="$budget" -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "corpus/$t" >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
  fi
  executed=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec:/ {print $2}' "$log")
  printf '%-12s %-5s %12s executions %8s exec/s  (%s)\n' "$t" "$result" "${executed:-?}" "${rate:-?}" "$log"
done
exit $status

"""thermoroute beside its peers, in one run on one machine, printed as one
table (the Markdown the README keeps). `scripts/bench-peers.sh` installs the
peers and builds the release binary, then runs this.

    python3 bench/peers.py --bin target/release/thermoroute [--quick]

Rows:
- the Gibbs kernel: `thermoroute bench --sizes 256 --threads 2` on every CPU
  kernel path, against thrml 0.1.4 at its peak (`bench/thrml_lattice.py`:
  jit + vmap over 4-32 chains, compile excluded, best kept);
- what a user waits for after sampling: `thermoroute sample --json` on the
  256x256 periodic +-J lattice (4 chains, 100 warmup + 1,000 draws), whole
  process minus the sampler's own seconds, against ArviZ's bulk ESS + rank
  R-hat (`bench/arviz_diagnostics.py`) on the very draws (`sample --draws`);
- simulate mode: `thermoroute run` of the M/M/3 example (1 M jobs, whole
  process) against SimPy 4.1.2 on the same model (`bench/simpy_mm3.py`).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, **kw):
    """Runs `cmd`; returns (stdout, wall seconds). Fails loudly."""
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return p.stdout, wall


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def load():
    return os.getloadavg()[0]


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True, help="release thermoroute binary")
    p.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    a = p.parse_args()
    rows = []  # (what, thermoroute, peer, ratio, note)
    loads = [load()]
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()}", file=sys.stderr)

    # 1. Gibbs kernel vs thrml at its peak, 256x256.
    out, _ = run([a.bin, "bench", "--sizes", "256", "--threads", "2", "--json", "-q"])
    kern = json.loads(out)["results"]
    loads.append(load())
    chains = "4,8" if a.quick else "4,8,16,32"
    out, _ = run([sys.executable, os.path.join(HERE, "thrml_lattice.py"), "--sizes", "256",
                  "--chains", chains, "--updates", "2e7" if a.quick else "2e8", "--json"])
    thrml = json_lines(out)[0]
    loads.append(load())
    peak = thrml["best"]["updates_per_second"]
    for r in kern:
        rate = r["updates_per_second"]
        rows.append((f"Gibbs kernel 256x256, 2 threads, {r.get('cpu_kernel', 'one path')}",
                     f"{rate / 1e6:.0f} M updates/s",
                     f"thrml {peak / 1e6:.0f} M/s ({thrml['best']['chains']} chains)",
                     rate / peak, "target 8x"))

    # 2. sample end to end vs ArviZ on the same draws.
    samples = "200" if a.quick else "1000"
    with tempfile.TemporaryDirectory() as tmp:
        prog = os.path.join(tmp, "lattice.json")
        run([a.bin, "bench", "--suite", "diagnostics", "--samples", "8", "--chains", "4",
             "--write-program", prog, "-q", "--json"])
        # The program file says 8 draws per chain; set the measured shape.
        doc = json.load(open(prog))
        doc["schedule"]["samples"] = int(samples)
        json.dump(doc, open(prog, "w"))
        report = os.path.join(tmp, "report.json")
        out, wall = run([a.bin, "sample", prog, "--json", "-q"])
        open(report, "w").write(out)
        sampler_s = json.loads(out)["stats"]["seconds"]
        loads.append(load())
        draws = os.path.join(tmp, "draws.json")
        _, wall_draws = run([a.bin, "sample", prog, "--json", "-q", "--draws", draws])
        out, _ = run([sys.executable, os.path.join(HERE, "arviz_diagnostics.py"), draws,
                      "--report", report, "--json"])
        arviz = json_lines(out)[0]
        loads.append(load())
    after = wall - sampler_s
    rows.append((f"`sample --json` 256x256, 4 chains x {samples} draws: whole process",
                 f"{wall:.2f} s (sampler {sampler_s:.2f} s)", "", None, ""))
    rows.append(("diagnostics + output (whole process - sampler)", f"{after:.2f} s",
                 f"ArviZ bulk ESS + rank R-hat {arviz['seconds']:.1f} s", arviz["seconds"] / after,
                 "target 30x"))
    rows.append(("`sample --json --draws FILE` (also writes the draws)", f"{wall_draws:.2f} s",
                 "", None, ""))

    # 3. Simulate mode vs SimPy, M/M/3.
    jobs = 100_000 if a.quick else 1_000_000
    _, wall = run([a.bin, "run", "examples/graphs/mm3-interactive.json",
                   "examples/graphs/mm3-batch.json", "--hardware", "examples/hardware/mm3.toml",
                   "--mode", "simulate", "--jobs", str(jobs), "--rate", "2700", "--mix", "3,7",
                   "-q"])
    loads.append(load())
    out, _ = run([sys.executable, os.path.join(HERE, "simpy_mm3.py"), str(jobs)])
    simpy = json_lines(out)[0]
    loads.append(load())
    ours = jobs / wall
    rows.append((f"`run --mode simulate` M/M/3, {jobs:,} jobs (whole process)",
                 f"{ours / 1e6:.2f} M jobs/s ({wall:.2f} s)",
                 f"SimPy {simpy['jobs_per_s'] / 1e3:.0f} k jobs/s", ours / simpy["jobs_per_s"],
                 "target 50x"))

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()}, "
          f"load average {min(loads):.1f}-{max(loads):.1f} during the run")
    print()
    print("| measurement | thermoroute | peer (same run) | ratio | |")
    print("|---|---|---|---|---|")
    for what, ours, peer, ratio, note in rows:
        r = f"{ratio:.1f}x" if ratio is not None else ""
        print(f"| {what} | {ours} | {peer} | {r} | {note} |")


if __name__ == "__main__":
    main()

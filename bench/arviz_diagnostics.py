"""Peer benchmark: ArviZ's rank R-hat and bulk ESS on the draws that
`thermoroute sample --draws FILE` wrote, timed; optionally checks
thermoroute's own diagnostics (`sample --json` output) against them.

    pip install arviz-stats==0.8.0 numpy
    python bench/arviz_diagnostics.py DRAWS.json [--report REPORT.json]

Only spin draws (-1/+1) are read (the lattice benchmark's shape).
"""

import argparse
import json
import sys
import time

import numpy as np
from arviz_stats.base import array_stats


def load_spin_draws(path):
    """(variables, chains, draws) array from a {"chains","samples","draws"} file.

    Parses the text directly: every value is -1 or 1, so each '1' is one
    value, negative when a '-' precedes it (json.load would need ~20 GB).
    """
    raw = np.fromfile(path, dtype=np.uint8)
    head = bytes(raw[:200]).decode("ascii", "replace")
    chains = int(head.split('"chains":')[1].split(",")[0])
    samples = int(head.split('"samples":')[1].split(",")[0])
    start = head.index('"draws":') + len('"draws":')
    body = raw[start:]
    ones = np.flatnonzero(body == ord("1"))
    values = np.where(body[ones - 1] == ord("-"), -1.0, 1.0)
    n_vars = values.size // (chains * samples)
    assert n_vars * chains * samples == values.size, "not a spin-only draws file"
    return values.reshape(chains, samples, n_vars).transpose(2, 0, 1).copy()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("draws")
    p.add_argument("--report", help="thermoroute sample --json output to compare")
    p.add_argument("--json", action="store_true", help="one JSON line instead of text")
    args = p.parse_args()
    t0 = time.perf_counter()
    x = load_spin_draws(args.draws)
    t1 = time.perf_counter()
    ess = array_stats.ess(x, chain_axis=-2, draw_axis=-1, method="bulk")
    t2 = time.perf_counter()
    rhat = array_stats.rhat(x, chain_axis=-2, draw_axis=-1, method="rank")
    t3 = time.perf_counter()
    n, c, d = x.shape
    if args.json:
        print(json.dumps({"peer": "arviz-stats 0.8.0", "variables": n, "chains": c, "draws": d,
                          "ess_bulk_s": t2 - t1, "rhat_rank_s": t3 - t2, "seconds": t3 - t1}))
        sys.stdout.flush()
    print(
        f"arviz-stats: {n} variables x {c} chains x {d} draws: "
        f"ess bulk {t2 - t1:.2f} s + rhat rank {t3 - t2:.2f} s = {t3 - t1:.2f} s "
        f"(loading draws {t1 - t0:.2f} s, not counted)",
        file=sys.stderr if args.json else sys.stdout,
    )
    if args.report:
        with open(args.report) as f:
            doc = json.load(f)["diagnostics"]
        ours_r = np.array([np.nan if v is None else v for v in doc["rhat"]])
        ours_e = np.array([np.nan if v is None else v for v in doc["ess_bulk"]])
        both = lambda a, b: np.isfinite(a) & np.isfinite(b)
        ok_r, ok_e = both(ours_r, rhat), both(ours_e, ess)
        print(
            f"vs thermoroute: max |R-hat diff| {np.max(np.abs(ours_r - rhat)[ok_r]):.3g}, "
            f"max |ESS diff| {np.max(np.abs(ours_e - ess)[ok_e]):.3g}, "
            f"undefined R-hat ours/ArviZ {np.sum(~np.isfinite(ours_r))}/{np.sum(~np.isfinite(rhat))}",
            file=sys.stderr if args.json else sys.stdout,
        )


if __name__ == "__main__":
    main()

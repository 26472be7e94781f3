"""Peer benchmark: thrml (Extropic's JAX block-Gibbs library) on the same
periodic ±J lattices as `thermoroute bench`. Prints spin updates per second.

    pip install thrml==0.1.4
    python bench/thrml_lattice.py --sizes 64,256 --chains 4,8,16,32 [--json]

thrml at its peak: one `jax.jit(jax.vmap(...))` call over all chains, the
compile (first call) excluded, for each chain count; the best is reported.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from thrml import Block, SamplingSchedule, SpinNode, sample_states
from thrml.models import IsingEBM, IsingSamplingProgram, hinton_init


def lattice(side, rng):
    at = lambda r, c: (r % side) * side + (c % side)
    edges = []
    for r in range(side):
        for c in range(side):
            edges += [(at(r, c), at(r, c + 1)), (at(r, c), at(r + 1, c))]
    weights = rng.choice([-1.0, 1.0], size=len(edges))
    biases = rng.uniform(-0.5, 0.5, size=side * side)
    return edges, weights, biases


def run(side, chains, sweeps):
    rng = np.random.default_rng(7)
    edges, weights, biases = lattice(side, rng)
    nodes = [SpinNode() for _ in range(side * side)]
    model = IsingEBM(
        nodes,
        [(nodes[i], nodes[j]) for i, j in edges],
        jnp.asarray(biases, dtype=jnp.float32),
        jnp.asarray(weights, dtype=jnp.float32),
        jnp.array(1.0),
    )
    colour = [(i // side + i % side) % 2 for i in range(side * side)]
    free = [Block([n for n, c in zip(nodes, colour) if c == k]) for k in (0, 1)]
    program = IsingSamplingProgram(model, free, [])
    schedule = SamplingSchedule(n_warmup=sweeps - 1, n_samples=1, steps_per_sample=1)
    keys = jax.random.split(jax.random.key(1), chains)

    def one_chain(key):
        k_init, k_run = jax.random.split(key)
        init = hinton_init(k_init, model, free, ())
        return sample_states(k_run, program, schedule, init, [], [Block(nodes)])

    go = jax.jit(jax.vmap(one_chain))
    jax.block_until_ready(go(keys))  # compile
    start = time.perf_counter()
    jax.block_until_ready(go(keys))
    seconds = time.perf_counter() - start
    updates = chains * sweeps * side * side
    return updates / seconds, seconds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="64,256")
    p.add_argument("--chains", default="4,8,16,32", help="chain counts to try")
    p.add_argument("--updates", type=float, default=2e8)
    p.add_argument("--json", action="store_true", help="one JSON line per lattice")
    a = p.parse_args()
    for side in map(int, a.sizes.split(",")):
        rows = []
        for chains in map(int, a.chains.split(",")):
            sweeps = max(10, int(a.updates / (side * side * chains)))
            rate, seconds = run(side, chains, sweeps)
            rows.append({"chains": chains, "sweeps": sweeps, "seconds": seconds,
                         "updates_per_second": rate})
            if not a.json:
                print(f"thrml {side:>4}x{side:<4} chains {chains:>3}  {rate / 1e6:8.1f} M updates/s  ({seconds:.3f} s)")
        best = max(rows, key=lambda r: r["updates_per_second"])
        if a.json:
            print(json.dumps({"peer": "thrml 0.1.4", "lattice": f"{side}x{side}",
                              "runs": rows, "best": best}))
        else:
            print(f"thrml {side:>4}x{side:<4} best: {best['updates_per_second'] / 1e6:.1f} M updates/s "
                  f"with {best['chains']} chains")


if __name__ == "__main__":
    main()

"""The M/M/3 model of examples/hardware/mm3.toml in SimPy, for a side-by-side
throughput comparison with `thermoroute run --mode simulate`.

Three servers, exponential service (mean 1 ms), Poisson arrivals at 2.7 jobs/ms,
two priority classes (30% interactive, 70% batch) served by a PriorityResource
(non-preemptive, interactive first). Prints one JSON line.
"""

import json
import random
import sys
import time

import simpy


def main(jobs: int, rate_per_ms: float = 2.7, interactive_share: float = 0.3, seed: int = 0):
    rng = random.Random(seed)
    env = simpy.Environment()
    servers = simpy.PriorityResource(env, capacity=3)
    latencies = {0: [], 1: []}

    def job(priority):
        arrived = env.now
        with servers.request(priority=priority) as req:
            yield req
            yield env.timeout(rng.expovariate(1.0))
        latencies[priority].append(env.now - arrived)

    def source():
        for _ in range(jobs):
            yield env.timeout(rng.expovariate(rate_per_ms))
            env.process(job(0 if rng.random() < interactive_share else 1))

    env.process(source())
    start = time.perf_counter()
    env.run()
    wall = time.perf_counter() - start

    def p95(xs):
        xs = sorted(xs)
        return xs[max(0, int(0.95 * len(xs)) - 1)] if xs else None

    print(json.dumps({
        "peer": f"simpy {simpy.__version__}",
        "model": "M/M/3, two priority classes, rho=0.9",
        "jobs": jobs,
        "wall_s": wall,
        "jobs_per_s": jobs / wall,
        "interactive_p95_ms": p95(latencies[0]),
        "batch_p95_ms": p95(latencies[1]),
    }))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)

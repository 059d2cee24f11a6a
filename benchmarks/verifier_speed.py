"""Verifier time per call (median of several calls) for each math env at published sizes.

Run: python benchmarks/verifier_speed.py. Inputs are random valid constructions of the sizes
published constructions have (Erdős 600 steps; AC1/AC2 30,000 and 50,000 steps, and the
100,000 the envs accept; 26 and 32 circles).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from envs.ac1.verifier import ac1_bound
from envs.ac2.verifier import ac2_bound
from envs.circle_packing.env import grid_packing
from envs.circle_packing.verifier import sum_of_radii
from envs.erdos.verifier import erdos_c5


def median_seconds(fn, arg, calls: int) -> float:
    fn(arg)  # warm-up: imports, FFT plan caches
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    cases = [("erdos", 600, erdos_c5, rng.uniform(0.25, 0.75, 600), 51)]
    for name, verifier in [("ac1", ac1_bound), ("ac2", ac2_bound)]:
        for n in (30_000, 50_000, 100_000):
            cases.append((name, n, verifier, rng.uniform(0, 1, n), 21))
    for n in (26, 32):
        cases.append((f"cp{n}", n, lambda c, n=n: sum_of_radii(c, n), grid_packing(n), 201))
    print(f"{'env':6s} {'size':>7s} {'calls':>6s} {'median ms/call':>15s}")
    for name, size, verifier, arg, calls in cases:
        seconds = median_seconds(verifier, arg, calls)
        print(f"{name:6s} {size:7d} {calls:6d} {seconds * 1e3:15.3f}")


if __name__ == "__main__":
    main()

"""Sandbox throughput: 64 trivial `call_python` candidates, serially and through EvalPool.

Prints the median batch time of each (over a few repeats), the median latency of one call,
and the speed-up of the pool. Run: python benchmarks/sandbox_pool.py [--n 64] [--repeats 3]
"""

import argparse
import os
import statistics
import time

from harness.sandbox import runner as sandbox
from harness.sandbox.pool import EvalPool
from harness.sandbox.runner import call_python


def candidate(i: int) -> str:
    return f"def solve(k):\n    return [{i}, k, {i} * k]\n"


def evaluate(i: int) -> float:
    """One sandboxed call; returns its wall time and checks the value."""
    result = call_python(candidate(i), "solve", {"k": 2})
    assert result.ok and result.value == [i, 2, 2 * i], result.reason
    return result.wall_s


def timed(run_batch) -> tuple[float, list[float]]:
    started = time.perf_counter()
    latencies = run_batch()
    return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: os.cpu_count()")
    args = parser.parse_args()
    items = list(range(args.n))
    workers = args.workers or os.cpu_count()
    print(f"isolation: {sandbox.isolation()}  cpus: {os.cpu_count()}  workers: {workers}")

    evaluate(-1)  # warm-up: the isolation probe and the page cache
    serial_s, pool_s, latencies = [], [], []
    for _ in range(args.repeats):
        total, lat = timed(lambda: [evaluate(i) for i in items])
        serial_s.append(total)
        latencies += lat
        with EvalPool(workers) as pool:
            total, _ = timed(lambda: pool.map(evaluate, items))
        pool_s.append(total)

    serial, pooled = statistics.median(serial_s), statistics.median(pool_s)
    print(f"candidates: {args.n}  repeats: {args.repeats}")
    print(f"median call latency (serial):  {statistics.median(latencies) * 1e3:7.1f} ms")
    print(f"serial   median batch: {serial:6.2f} s  ({args.n / serial:5.1f} candidates/s)")
    print(f"EvalPool median batch: {pooled:6.2f} s  ({args.n / pooled:5.1f} candidates/s)")
    print(f"speed-up (serial / pool): {serial / pooled:.2f}x")


if __name__ == "__main__":
    main()

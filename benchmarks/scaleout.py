"""Scale-out: local vs Ray, for whole arms and for candidate evaluations.

1. Wall time of a 4-arm `smoke` experiment (tiny model, toy env) under `--executor local`
   (arms one after another) and `--executor ray` (a local Ray, arms side by side), and their
   ratio. Ray's start-up is included: it is part of what a user waits for.
2. N AtCoder (ahc039) candidate evaluations, each a distinct C++ program (so each compiles),
   through the local sandbox pool and through Ray tasks (`eval_executor=ray`), and their ratio.

Ray runs inside a private network namespace with only loopback (re-executed under
`unshare --net` when possible), so it never listens on an outward address.

    python benchmarks/scaleout.py                 # both parts, 256 evaluations
    python benchmarks/scaleout.py --n 32 --repeats 1
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUEST = "compare full vs no_training vs best_of_n vs eps_greedy on toy"


def in_private_net() -> bool:
    return os.environ.get("SCALEOUT_PRIVATE_NET") == "1"


def reexec_in_private_net() -> None:
    if in_private_net() or shutil.which("unshare") is None or shutil.which("ip") is None:
        return
    env = {**os.environ, "SCALEOUT_PRIVATE_NET": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
           sys.executable, *sys.argv]
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0:
        raise SystemExit(subprocess.run(cmd, env=env).returncode)


def arms_wall_s(kind: str, max_parallel: int) -> float:
    from harness.lab.executors import ExecutorSpec
    from harness.lab.experiment import create_experiment, run_experiment

    with tempfile.TemporaryDirectory() as root:
        folder = create_experiment(REQUEST, root=Path(root), budget="smoke", model="tiny",
                                   planner="offline")
        arms = json.loads((folder / "plan.json").read_text())["arms"]
        assert len(arms) == 4, arms
        started = time.perf_counter()
        run_experiment(folder, progress=False,
                       executor=ExecutorSpec(kind, max_parallel=max_parallel))
        return time.perf_counter() - started


def evaluations_wall_s(kind: str, n: int) -> float:
    from harness.env import make_env
    from harness.sandbox.pool import make_pool

    env = make_env("ahc039", n_cases=1)
    base = env.initial_solutions("program")[0]
    tag = f"{kind}-{time.time_ns()}"  # fresh sources: every candidate compiles, none is cached
    sources = [f"{base}\n// candidate {tag}-{i}\n" for i in range(n)]
    started = time.perf_counter()
    with make_pool(kind) as pool:
        results = pool.map(lambda s: env.score(s, "program"), sources)
    wall = time.perf_counter() - started
    bad = [r.message for r in results if not r.valid]
    assert not bad, bad[:3]
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="AtCoder evaluations per engine")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-parallel", type=int, default=4)
    parser.add_argument("--skip", choices=["arms", "evals"], default=None)
    args = parser.parse_args()
    reexec_in_private_net()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    print(f"cpus: {os.cpu_count()}  private network namespace: {in_private_net()}  "
          f"repeats: {args.repeats} (medians)")
    if args.skip != "arms":
        walls = {k: statistics.median(arms_wall_s(k, args.max_parallel)
                                      for _ in range(args.repeats)) for k in ("local", "ray")}
        print(f"4 arms of a smoke experiment (tiny, toy): local {walls['local']:6.1f} s   "
              f"ray {walls['ray']:6.1f} s   local/ray {walls['local'] / walls['ray']:.2f}x")
    if args.skip != "evals":
        walls = {k: statistics.median(evaluations_wall_s(k, args.n)
                                      for _ in range(args.repeats)) for k in ("local", "ray")}
        print(f"{args.n} ahc039 candidate evaluations (compile + 1 case each): "
              f"local pool {walls['local']:6.1f} s   ray {walls['ray']:6.1f} s   "
              f"local/ray {walls['local'] / walls['ray']:.2f}x")


if __name__ == "__main__":
    main()

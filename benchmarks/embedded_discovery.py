"""Does test-time training help the embedded model discover? (issue 13)

On Erdős minimum overlap with construction actions, runs three arms at the same number of
rollouts and seeds, all from the same start state:
  full      PUCT reuse + entropic adaptive objective + LoRA training (TTT-Discover)
  no_ttt    PUCT reuse, frozen model
  best_of_n no reuse, no training (always the initial state)
and prints per arm the valid fraction, the best C5 (mean ± 95% CI across seeds; lower is
better), how many seeds beat the start state, and wall time. Every seed is reported; nothing
is picked.

Usage: python benchmarks/embedded_discovery.py [--quick] [--seeds 3] [--model smollm2]
       [--steps N --groups G --group-size K --max-new-tokens T] [--learning-rate LR]
       [--arms full,no_ttt,best_of_n] [--out DIR]
Same seeds across arms share their random draws, so arms differ only where training or
reuse changed what was sampled (a paired comparison).
`--quick` is CI-sized (2 steps of 4 rollouts per seed); the default is the full run by hand.
Runs resume: the same `--out` with more `--seeds` runs only the new seeds. Wall time is the
sum of the recorded step times (model loading excluded).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from pathlib import Path

import pandas as pd

from harness.config import make_config
from harness.report import t95
from harness.ttt import run_ttt

ARMS = {
    "full": dict(sampler="puct", objective="entropic_adaptive", train=True),
    "no_ttt": dict(sampler="puct", objective="none", train=False),
    "best_of_n": dict(sampler="none", objective="none", train=False),
}


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan for a single value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--learning-rate", type=float, default=None,
                    help="LoRA learning rate of the full arm (default: the small budget's)")
    ap.add_argument("--arms", default=",".join(ARMS),
                    help="comma-separated subset of: " + ", ".join(ARMS))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.groups, args.group_size, args.max_new_tokens = 2, 1, 4, 96

    out = args.out or Path(tempfile.mkdtemp(prefix="embedded-discovery-"))
    arms = [a.strip() for a in args.arms.split(",")]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        ap.error(f"unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
    rows = []
    for arm, overrides in ((a, ARMS[a]) for a in arms):
        for seed in range(args.seeds):
            cfg = make_config("small", env="erdos", model=args.model, action="construction",
                              steps=args.steps, groups_per_step=args.groups,
                              group_size=args.group_size, max_new_tokens=args.max_new_tokens,
                              seed=seed, **overrides)
            if args.learning_rate is not None:
                cfg = cfg.replace(learning_rate=args.learning_rate)
            # resume: a rerun with --out and more --seeds adds seeds, keeping the finished ones
            result = run_ttt(cfg, out, arm=arm, progress=False, resume=True)
            rows.append({"arm": arm, "seed": seed, "best_c5": result.best_raw_score})
            print(json.dumps(rows[-1]), flush=True)

    steps = pd.read_csv(out / "data" / "steps.csv")  # wall time as the steps recorded it
    wall = steps.groupby(["arm", "seed"])["time/step_s"].sum()
    for row in rows:
        row["wall_s"] = float(wall.get((row["arm"], row["seed"]), math.nan))
    rollouts = pd.read_csv(out / "data" / "rollouts.csv")
    buffer = pd.read_csv(out / "data" / "buffer.csv")  # each run's best start, drawn per seed
    starts = buffer[buffer.step == -1].groupby(["arm", "seed"])["raw_score"].min()
    for row in rows:
        row["start_c5"] = float(starts.get((row["arm"], row["seed"]), math.nan))
    per_seed = pd.DataFrame(rows)
    print(f"\nerdos, construction actions, model={args.model}, {args.seeds} seeds, "
          f"{args.steps} steps x {args.groups * args.group_size} rollouts per seed; "
          f"start states drawn per seed (best start C5 "
          f"{per_seed.start_c5.min():.6f}-{per_seed.start_c5.max():.6f}, lower is better); "
          f"folder {out}")
    print(f"{'arm':10s} {'valid':>6s} {'best C5 mean ± 95% CI':>26s} {'beat start':>10s} "
          f"{'wall s':>8s}  per-seed best")
    for arm in arms:
        seeds = per_seed[per_seed.arm == arm]
        valid = rollouts[rollouts.arm == arm]["valid"].mean()
        mean, half = mean_ci95(seeds.best_c5.tolist())
        beat = int((seeds.best_c5 < seeds.start_c5).sum())
        print(f"{arm:10s} {valid:6.1%} {mean:14.6f} ± {half:9.6f} {beat:>6d}/{len(seeds):<3d} "
              f"{seeds.wall_s.sum():8.0f}  "
              + ", ".join(f"{v:.5f}" for v in seeds.best_c5))
    return per_seed


if __name__ == "__main__":
    main()

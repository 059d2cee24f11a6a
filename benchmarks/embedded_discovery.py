"""Does test-time training help the embedded model discover? (issues 13 and 19)

On construction envs (default: Erdős minimum overlap and the first autocorrelation
inequality), runs three arms at the same number of rollouts, paired by seed:
  full         PUCT reuse + entropic adaptive objective + LoRA training (TTT-Discover)
  no_training  PUCT reuse, frozen model
  best_of_n    no reuse, no training (always an initial state)
and prints per env and arm the valid fraction, the best score (mean ± 95% CI across seeds),
the paired difference to best_of_n (mean ± 95% CI; the CI excluding 0 is a paired t-test at
the 5% level), how many seeds beat best_of_n, and wall time per step. Every seed that ran is
reported; nothing is picked. `--results FILE` also writes these tables, the best-so-far
curves and the command as Markdown (benchmarks/RESULTS.md).

Usage: python benchmarks/embedded_discovery.py [--quick] [--envs erdos,ac1] [--seeds 5]
       [--steps 16 --groups G --group-size K --max-new-tokens T] [--learning-rate LR]
       [--model smollm2] [--arms full,no_training,best_of_n] [--out DIR] [--results FILE]
Seeds are 0..N-1, fixed in advance. Same seeds across arms share their random draws, so arms
differ only where training or reuse changed what was sampled. Runs resume: the same `--out`
with more `--seeds` runs only the new seeds. Wall time is the sum of the recorded step times
(model loading excluded). `--quick` is CI-sized (2 steps of 4 rollouts per seed).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

from harness.base.config import make_config
from harness.base.records import RunPaths
from harness.env import env_class
from harness.lab.stats import t95
from harness.loop.ttt import run_ttt

ARMS = {
    "full": dict(reuse="puct", objective="entropic_adaptive", train=True),
    "no_training": dict(reuse="puct", objective="none", train=False),
    "best_of_n": dict(reuse="none", objective="none", train=False),
}
CURVE_STEPS = (0, 1, 3, 7, 11, 15, 23, 31)  # best-so-far shown after these steps


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan for a single value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--envs", default="erdos,ac1")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--groups", type=int, default=1)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--learning-rate", type=float, default=None,
                    help="LoRA learning rate of the full arm (default: the small budget's)")
    ap.add_argument("--arms", default=",".join(ARMS),
                    help="comma-separated subset of: " + ", ".join(ARMS))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--results", type=Path, default=None, help="write the tables as Markdown")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.groups, args.group_size, args.max_new_tokens = 2, 1, 4, 48
    args.arm_list = [a.strip() for a in args.arms.split(",")]
    unknown = sorted(set(args.arm_list) - set(ARMS))
    if unknown:
        ap.error(f"unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
    return args


def run_env(env: str, args, out: Path) -> pd.DataFrame:
    """Every arm and seed on one env (resuming finished ones); one row per (arm, seed).
    Seed by seed, all arms of a seed together: a run cut short still has complete pairs."""
    rows = []
    for seed in range(args.seeds):
        for arm in args.arm_list:
            cfg = make_config("small", env=env, model=args.model, action="construction",
                              steps=args.steps, groups_per_step=args.groups,
                              group_size=args.group_size, max_new_tokens=args.max_new_tokens,
                              seed=seed, **ARMS[arm])
            if args.learning_rate is not None:
                cfg = cfg.replace(learning_rate=args.learning_rate)
            result = run_ttt(cfg, RunPaths(out, out / "data", arm), progress=False, resume=True)
            rows.append({"env": env, "arm": arm, "seed": seed, "best": result.best_raw_score})
            print(json.dumps(rows[-1]), flush=True)
    per_seed = pd.DataFrame(rows).sort_values(["arm", "seed"], key=_arm_order(args))
    steps = pd.read_csv(out / "data" / "steps.csv")
    rollouts = pd.read_csv(out / "data" / "rollouts.csv")
    keyed = per_seed.set_index(["arm", "seed"]).index
    per_seed["wall_s"] = steps.groupby(["arm", "seed"])["time/step_s"].sum().reindex(keyed).values
    per_seed["step_s"] = steps.groupby(["arm", "seed"])["time/step_s"].mean().reindex(keyed).values
    per_seed["valid"] = rollouts.groupby(["arm", "seed"])["valid"].mean().reindex(keyed).values
    per_seed["tokens"] = rollouts.groupby(["arm", "seed"])["tokens"].mean().reindex(keyed).values
    return per_seed


def _arm_order(args):
    order = {arm: i for i, arm in enumerate(args.arm_list)}
    return lambda col: col.map(order) if col.name == "arm" else col


def arm_rows(per_seed: pd.DataFrame, direction: str) -> list[dict]:
    """One summary row per arm: valid fraction, best mean ± CI, paired difference to
    best_of_n (positive = better than best_of_n, in the env's direction)."""
    sign = 1.0 if direction == "max" else -1.0
    base = per_seed[per_seed.arm == "best_of_n"].set_index("seed").best
    out = []
    for arm, seeds in per_seed.groupby("arm", sort=False):
        mean, half = mean_ci95(seeds.best.tolist())
        row = {"arm": arm, "seeds": len(seeds), "valid": seeds.valid.mean(), "mean": mean,
               "half": half, "step_s": seeds.step_s.mean(), "tokens": seeds.tokens.mean(),
               "per_seed": ", ".join(f"{v:.5f}" for v in seeds.best)}
        paired = seeds.set_index("seed").best
        common = paired.index.intersection(base.index)
        if arm != "best_of_n" and len(common) >= 2:
            diff = [sign * (paired[s] - base[s]) for s in common]
            row["diff"], row["diff_half"] = mean_ci95(diff)
            row["wins"] = f"{sum(d > 0 for d in diff)}/{len(diff)}"
            low, high = row["diff"] - row["diff_half"], row["diff"] + row["diff_half"]
            row["verdict"] = ("better" if low > 0 else "worse" if high < 0
                              else "within noise")
        out.append(row)
    return out


def curves(out: Path, steps: int) -> pd.DataFrame:
    """Mean best-so-far across seeds after the CURVE_STEPS steps, one column per arm."""
    table = pd.read_csv(out / "data" / "steps.csv")
    best = table.pivot_table(index="step", columns="arm", values="score/best", aggfunc="mean")
    shown = [s for s in CURVE_STEPS if s < steps] + ([steps - 1] if steps - 1 not in
                                                      CURVE_STEPS else [])
    return best.loc[[s for s in shown if s in best.index]]


def print_env(env: str, rows: list[dict], args, out: Path) -> None:
    cls = env_class(env)
    print(f"\n{env} ({cls.direction}imise {cls.score_name}), construction actions, "
          f"model={args.model}, seeds 0..{args.seeds - 1}, {args.steps} steps x "
          f"{args.groups * args.group_size} rollouts per seed; folder {out}")
    print(f"{'arm':12s} {'valid':>6s} {'best mean ± 95% CI':>24s} {'vs best_of_n ± CI':>22s} "
          f"{'wins':>5s} {'s/step':>7s}  per-seed best")
    for r in rows:
        diff = (f"{r['diff']:+.5f} ± {r['diff_half']:.5f}" if "diff" in r else "")
        print(f"{r['arm']:12s} {r['valid']:6.1%} {r['mean']:12.6f} ± {r['half']:9.6f} "
              f"{diff:>22s} {r.get('wins', ''):>5s} {r['step_s']:7.1f}  {r['per_seed']}")


def markdown(results: dict, args, argv: list[str]) -> str:
    command = "python benchmarks/embedded_discovery.py " + " ".join(map(shlex.quote, argv))
    lines = ["# Embedded discovery benchmark", "",
             "Written by `benchmarks/embedded_discovery.py --results`; every seed that ran is "
             "listed. Command:", "", f"    {command}", "",
             f"Model {args.model}, construction actions, seeds 0..{args.seeds - 1} fixed in "
             f"advance, {args.steps} steps x {args.groups} group(s) x {args.group_size} "
             f"rollouts per seed, at most {args.max_new_tokens} new tokens, actions ending at "
             "their answer. Arms are paired by seed. 'vs best_of_n' is the mean paired "
             "difference of the best score (positive = better, in the env's direction) with "
             "its 95% t-interval: an interval that excludes 0 is a paired t-test at 5%.", ""]
    for env, (rows, curve) in results.items():
        cls = env_class(env)
        lines += [f"## {env}: {cls.title} ({cls.direction}imise {cls.score_name})", "",
                  "| arm | seeds | valid | best: mean ± 95% CI | vs best_of_n ± 95% CI | "
                  "seeds better | verdict | tokens/rollout | s/step | best per seed |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            diff = f"{r['diff']:+.5f} ± {r['diff_half']:.5f}" if "diff" in r else "—"
            lines.append(f"| {r['arm']} | {r['seeds']} | {r['valid']:.1%} | {r['mean']:.6f} ± "
                         f"{r['half']:.6f} | {diff} | {r.get('wins', '—')} | "
                         f"{r.get('verdict', '—')} | {r['tokens']:.0f} | {r['step_s']:.1f} | "
                         f"{r['per_seed']} |")
        lines += ["", "Mean best-so-far across seeds, by step:", "",
                  "| step | " + " | ".join(curve.columns) + " |",
                  "|---|" + "---|" * len(curve.columns)]
        for step, values in curve.iterrows():
            lines.append(f"| {step} | " + " | ".join(f"{v:.6f}" for v in values) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="embedded-discovery-"))
    results, frames = {}, []
    for env in [e.strip() for e in args.envs.split(",")]:
        out = root / env
        per_seed = run_env(env, args, out)
        rows = arm_rows(per_seed, env_class(env).direction)
        print_env(env, rows, args, out)
        results[env] = (rows, curves(out, args.steps))
        frames.append(per_seed)
    if args.results:
        args.results.write_text(markdown(results, args, argv))
        print(f"\nwrote {args.results}")
    return pd.concat(frames, ignore_index=True)


if __name__ == "__main__":
    main()

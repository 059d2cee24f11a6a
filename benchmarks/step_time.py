"""One step of the README main job, with issue 19's CPU settings off and on, in one run.

Usage: python benchmarks/step_time.py [--model smollm2] [--repeats 2] [--steps 2]
       [--max-new-tokens N]
Runs the main job's baseline arm (`harness experiment "tune entropic temperature on erdos"`:
the planner's plan, seed 0) for --steps steps, alternately with the settings of before issue
19 and with today's defaults, --repeats times each, and prints per setting the median step
time and its split (select / sample / evaluate / train, from data/steps.csv), the tokens per
rollout and the valid share, and the ratio of the step times. Both rows see the same machine
at nearly the same time, so the ratio holds on a noisy one where an absolute time does not.
Before issue 19: transformers `generate` (fast_sampler=off), actions to EOS or the token cap
(stop_at_answer=false), training 4 rollouts per micro-batch, fp32 sampling.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import pandas as pd

from harness.base.records import RunPaths
from harness.lab.planner import make_plan
from harness.loop.ttt import run_ttt

MAIN_JOB = "tune entropic temperature on erdos"
BEFORE = dict(fast_sampler="off", stop_at_answer=False, train_micro_batch=4,
              sample_dtype="model")
SPLIT = ("select", "sample", "eval", "train")


def one_run(cfg, overrides: dict, steps: int) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        paths = RunPaths.run_folder(Path(tmp))
        run_ttt(cfg.replace(steps=steps, **overrides), paths, progress=False)
        steps_df = pd.read_csv(paths.data / "steps.csv")
        rollouts = pd.read_csv(paths.data / "rollouts.csv")
    steps_df["tokens/rollout"] = rollouts.groupby("step").tokens.mean().values
    return steps_df


def main(argv: list[str] | None = None) -> dict[str, pd.DataFrame]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2, help="steps per run (step 0 included)")
    ap.add_argument("--max-new-tokens", type=int, default=None,
                    help="token cap per action (default: the main job's)")
    args = ap.parse_args(argv)

    plan = make_plan(MAIN_JOB, None, args.model, 1, "cpu", planner="offline")
    cfg = plan.config(plan.baseline, 0).replace(device="cpu")
    if args.max_new_tokens:
        cfg = cfg.replace(max_new_tokens=args.max_new_tokens)
    rows: dict[str, list[pd.DataFrame]] = {"before issue 19": [], "now": []}
    for _ in range(args.repeats):
        for label, overrides in (("before issue 19", BEFORE), ("now", {})):
            rows[label].append(one_run(cfg, overrides, args.steps))
    tables = {label: pd.concat(runs) for label, runs in rows.items()}
    print(f"model={args.model} arm={plan.baseline} groups x size={cfg.groups_per_step} x "
          f"{cfg.group_size} max_new_tokens={cfg.max_new_tokens} steps/run={args.steps} "
          f"repeats={args.repeats} (medians over every step that ran)")
    print(f"{'':16s} {'step s':>7s} " + " ".join(f"{s + ' s':>9s}" for s in SPLIT)
          + f" {'tokens/rollout':>14s} {'valid':>6s}")
    for label, df in tables.items():
        print(f"{label:16s} {df['time/step_s'].median():7.1f} "
              + " ".join(f"{df[f'time/{s}_s'].median():9.1f}" for s in SPLIT)
              + f" {df['tokens/rollout'].mean():14.1f} {df['valid_frac'].mean():6.0%}")
    ratio = statistics.median(tables["before issue 19"]["time/step_s"]) / \
        statistics.median(tables["now"]["time/step_s"])
    print(f"step time, before / now: {ratio:.2f}x")
    return tables


if __name__ == "__main__":
    main()

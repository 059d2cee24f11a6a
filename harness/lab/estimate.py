"""What a dry run prints before anything runs: the arms, their cost, and how long it will take.

The time is the plan's rollouts times seconds per rollout, where the rate is measured: the
median step time per rollout of the newest experiment under the reports root that ran the
same model on the same device (the same env if there is one), or, before any such run, the
stated default below, itself measured on the README's main job.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.base.config import Config
from harness.env import make_env, resolve_action
from harness.lab.experiment import hyperparameters
from harness.lab.folders import experiment_folders, ran, read_plan, reports_root_of
from harness.lab.plan import Plan, validate_plan

# seconds per rollout, whole step (sample + evaluate + train), by (model, device)
DEFAULT_RATES = {("smollm2", "cpu"): (2.6, "the README main job: 288 rollouts in 12m31s on "
                                           "2 cores")}


def measured_rate(root: Path, model: str, device: str, env: str,
                  exclude: Path | None = None) -> tuple[float, str] | None:
    """(seconds per rollout, where it was measured), or None without a comparable run."""
    candidates = []
    for folder in experiment_folders(root):
        steps_csv = folder / "data" / "steps.csv"
        if folder == exclude or not ran(folder) or not steps_csv.is_file():
            continue
        try:
            plan = json.loads((folder / "plan.json").read_text())
        except (OSError, ValueError):
            continue
        if plan.get("model") == model and plan.get("device") == device:
            same_env = plan.get("env") == env
            candidates.append((same_env, steps_csv.stat().st_mtime, folder, plan))
    for _, _, folder, plan in sorted(candidates, key=lambda c: c[:2], reverse=True):
        steps = pd.read_csv(folder / "data" / "steps.csv")
        per_step = Config().replace(**plan["settings"]).rollouts_per_step
        if "time/step_s" in steps and len(steps) and per_step:
            rate = float(steps["time/step_s"].median()) / per_step
            return rate, f"measured in {folder.relative_to(root).as_posix()} ({plan['env']})"
    return None


def rate_for(plan: Plan, root: Path, exclude: Path | None = None) -> tuple[float | None, str]:
    found = measured_rate(root, plan.model, plan.device, plan.env, exclude)
    if found:
        return found
    if (plan.model, plan.device) in DEFAULT_RATES:
        rate, where = DEFAULT_RATES[(plan.model, plan.device)]
        return rate, f"a stated default, from {where}"
    return None, f"no run of {plan.model} on {plan.device} under {root} yet"


def plan_table(folder: Path) -> str:
    """The dry run's text: one row per arm (overrides, action, rollouts per step, rollouts and
    a bound on new tokens over all seeds, estimated time), the totals with the estimated wall
    time and its source, and the baseline's settings (marked where not the released ones)."""
    plan = validate_plan(read_plan(folder))
    rate, source = rate_for(plan, reports_root_of(folder), exclude=Path(folder))
    released = hyperparameters(Config())
    env = make_env(plan.env)
    header = ("arm", "overrides", "action", "groups x size / step", "rollouts", "new tokens <=",
              "est. time")
    rows, total_rollouts, total_tokens = [header], 0, 0
    for arm in plan.arms:
        cfg = plan.config(arm.name, plan.seeds[0])
        rollouts = cfg.rollouts_per_step * cfg.steps * len(plan.seeds)
        tokens = rollouts * cfg.max_new_tokens
        total_rollouts, total_tokens = total_rollouts + rollouts, total_tokens + tokens
        overrides = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in arm.overrides.items()) or "(defaults)"
        rows.append((arm.name + (" *" if arm.name == plan.baseline else ""), overrides,
                     resolve_action(cfg, env),
                     f"{cfg.groups_per_step} x {cfg.group_size} = {cfg.rollouts_per_step}",
                     f"{rollouts:,}",
                     f"{tokens:,}", _duration(rate and rate * rollouts)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"{plan.request}  ({plan.planner} planner; * = baseline)",
             f"env {plan.env}, model {plan.model} on {plan.device}, budget {plan.budget}, "
             f"seeds {list(plan.seeds)}, {plan.settings['steps']} steps per run", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    settings = hyperparameters(plan.config(plan.baseline, plan.seeds[0]))
    lines += ["", f"total: {total_rollouts:,} rollouts, <= {total_tokens:,} new tokens; "
                  f"estimated {_duration(rate and rate * total_rollouts)} on this machine "
                  f"({f'{rate:.2f} s per rollout, ' if rate else ''}{source})",
              "settings: " + ", ".join(
                  f"{k} {v}" + ("" if v == released[k] else f" (released {released[k]})")
                  for k, v in settings.items())]
    return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if not seconds:
        return "unknown"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"

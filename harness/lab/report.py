"""Reports of an experiment folder, rendered from its files only.

`write_report(folder)` reads plan.json, config.json and data/*.csv, and (re)writes
data/summary.csv (one row per arm), figures/*.png and report.md (templates/report.md.j2), then
rebuilds the reports root's INDEX.md, FINDINGS.md and findings.csv (findings.py) from every
experiment folder. Comments (comments.md) are shown at the top. The status of a run (one arm
and seed) also comes from the files: finished when steps.csv has all its steps and its best
candidate was written (best/<arm>-s<seed>.score.json, the loop's last act).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.base.config import Config
from harness.base.records import BUFFER_COLUMNS, ROLLOUT_COLUMNS, STEP_COLUMNS, shard_dir
from harness.base.resources import templates
from harness.base.scores import best_index, best_of, better, fmt
from harness.env import env_class
from harness.env.problem import SCORER_FAILED
from harness.lab import figures
from harness.lab.findings import FINDINGS_CSV, write_findings
from harness.lab.folders import (
    experiment_folder,
    experiment_folders,
    read_plan,
    reports_root_of,
)
from harness.lab.memory import read_comments
from harness.lab.report_text import (
    WEAK_VALID_FRAC,
    findings,
    identical_actions,
    next_steps,
    same_score,
    unknowns,
    weak_model_notes,
)
from harness.lab.stats import ci95


# --- reading the folder ---
def read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns)
    return pd.read_csv(path, dtype={"arm": str, "message": str})


@dataclass(frozen=True)
class Records:
    """Everything a report is made from: the folder's plan, config and tidy CSVs."""
    folder: Path
    plan: dict
    config: dict           # {} before the first run (a dry-run folder)
    steps: pd.DataFrame
    rollouts: pd.DataFrame
    buffer: pd.DataFrame


def read_table(folder: Path, plan: dict, name: str, columns: list[str]) -> pd.DataFrame:
    """data/<name>, read from the jobs' shards where there are any: they hold every row a job
    wrote, while data/*.csv is merged only at job boundaries (a killed job's finished steps
    are in its shard alone), so a status read here is never stale."""
    if not (Path(folder) / "data" / "shards").is_dir():
        return read_csv(Path(folder) / "data" / name, columns)
    frames = [read_csv(shard_dir(folder, arm["name"], seed) / name, columns)
              for arm in plan["arms"] for seed in plan["seeds"]]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def load(folder: Path) -> Records:
    folder = experiment_folder(folder)
    config = folder / "config.json"
    plan = read_plan(folder)
    return Records(
        folder, plan, json.loads(config.read_text()) if config.exists() else {},
        *(read_table(folder, plan, name, columns) for name, columns in
          (("steps.csv", STEP_COLUMNS), ("rollouts.csv", ROLLOUT_COLUMNS),
           ("buffer.csv", BUFFER_COLUMNS))))


def finished_runs(folder: Path, steps: int, rows: pd.DataFrame | None = None
                  ) -> set[tuple[str, int]]:
    """(arm, seed) pairs whose every step is recorded (in `rows`, default data/steps.csv) and
    whose best candidate was written."""
    if rows is None:
        rows = read_csv(Path(folder) / "data" / "steps.csv", STEP_COLUMNS)
    counts = rows.groupby(["arm", "seed"]).size() if not rows.empty else {}
    return {(arm, int(seed)) for (arm, seed), n in dict(counts).items()
            if n >= steps and (Path(folder) / "best" / f"{arm}-s{int(seed)}.score.json").exists()}


def _best(values: pd.Series, direction: str) -> float:
    values = values.dropna()
    if values.empty:
        return math.nan
    return float(best_of(values, direction))


def run_table(rec: Records, direction: str) -> pd.DataFrame:
    """One row per planned (arm, seed): steps done, finished, best raw score, start score."""
    plan, steps, buffer = rec.plan, rec.steps, rec.buffer
    done = finished_runs(rec.folder, plan["settings"]["steps"], steps)
    rows = []
    for arm in plan["arms"]:
        for seed in plan["seeds"]:
            mine = steps[(steps["arm"] == arm["name"]) & (steps["seed"] == seed)]
            initial = buffer[(buffer["arm"] == arm["name"]) & (buffer["seed"] == seed)
                             & (buffer["step"] == -1)]
            rows.append({"arm": arm["name"], "seed": seed, "steps_done": len(mine),
                         "finished": (arm["name"], seed) in done,
                         "best_raw": _best(mine["score/best"], direction),
                         "start_raw": _best(initial["raw_score"], direction)})
    return pd.DataFrame(rows)


def summarize(rec: Records, runs: pd.DataFrame, direction: str) -> pd.DataFrame:
    """summary.csv: one row per arm, with the best raw score and mean +- 95% CI over seeds."""
    plan, steps, rollouts = rec.plan, rec.steps, rec.rollouts
    rows = []
    for arm in [a["name"] for a in plan["arms"]]:
        mine = runs[runs["arm"] == arm]
        bests = mine["best_raw"].dropna().to_numpy()
        n = len(bests)
        ci = ci95(bests)
        finished = int(mine["finished"].sum())
        status = ("finished" if finished == len(mine) else
                  "not started" if mine["steps_done"].sum() == 0 else "partial")
        arm_steps = steps[steps["arm"] == arm]
        arm_rollouts = rollouts[rollouts["arm"] == arm]
        rows.append({
            "arm": arm, "baseline": arm == plan["baseline"], "status": status,
            "runs_finished": finished, "runs": len(mine),
            "steps_done": int(mine["steps_done"].sum()),
            "steps_planned": plan["settings"]["steps"] * len(mine),
            "best_raw": _best(mine["best_raw"], direction),
            "mean_best": float(bests.mean()) if n else math.nan, "ci95": ci, "n": n,
            "start_raw": _best(mine["start_raw"], direction),
            "valid_frac": float(arm_rollouts["valid"].astype(bool).mean())
            if len(arm_rollouts) else math.nan,
            "rollouts": len(arm_rollouts),
            "tokens": int(arm_steps["tokens/generated"].sum()),
            "wall_s": float(arm_steps["time/step_s"].sum()), "direction": direction,
            # a run's first step carries one-time costs (warm-up, the longest start prompts):
            # shown apart so that equal work does not look unequal (issue 18)
            "first_step_s": float(arm_steps.loc[arm_steps["step"] == 0, "time/step_s"].sum()),
        })
    return pd.DataFrame(rows)


# --- rendering ---
def _env_meta(rec: Records) -> dict:
    env = rec.config.get("env")
    if env:
        return env

    cls = env_class(rec.plan["env"])
    return {"name": cls.name, "objective": cls.objective, "direction": cls.direction,
            "actions": list(cls.actions)}


def setup_rows(plan: dict, config: dict) -> tuple[list[str], list[dict]]:
    """Settings shared by all arms that differ from the defaults, and each arm's own diff."""
    defaults = Config().to_dict()
    full = {a["name"]: {**defaults, "env": plan["env"], "model": plan["model"],
                        "device": plan["device"], **plan["settings"], **a["overrides"]}
            for a in plan["arms"]}
    keys = [k for k in defaults if k != "seed"]
    common = [k for k in keys if len({json.dumps(c[k]) for c in full.values()}) == 1
              and next(iter(full.values()))[k] != defaults[k]]
    first = next(iter(full.values()))
    arms = []
    for arm in plan["arms"]:
        diff = [f"{k}={full[arm['name']][k]}" for k in keys
                if k not in common and full[arm["name"]][k] != defaults[k]]
        action = config.get("arms", {}).get(arm["name"], {}).get(
            "action", arm["overrides"].get("action", "auto"))  # resolved when it ran
        arms.append({"name": arm["name"], "diff": ", ".join(diff) or "(defaults)",
                     "why": arm.get("why", ""), "action": action})
    return [f"{k}={first[k]}" for k in common], arms


def valid_by_step(steps: pd.DataFrame, arms: list[str], limit: int = 12) -> list[list[str]]:
    if steps.empty:
        return []
    table = steps.pivot_table(index="step", columns="arm", values="valid_frac", aggfunc="mean")
    index = list(table.index)
    if len(index) > limit:
        index = sorted({index[round(i * (len(index) - 1) / (limit - 1))] for i in range(limit)})
    return [[str(s)] + [f"{table.at[s, a]:.0%}" if a in table and not
                            pd.isna(table.at[s, a]) else "-" for a in arms] for s in index]


def failures(rollouts: pd.DataFrame, top: int = 5) -> list[dict]:
    bad = rollouts[~rollouts["valid"].astype(bool)] if not rollouts.empty else rollouts
    if bad.empty:
        return []
    counts = bad["message"].fillna("(no message)").value_counts().head(top)
    return [{"count": int(n), "share": n / len(rollouts), "message": str(m)[:200]}
            for m, n in counts.items()]


def scorer_failures(rollouts: pd.DataFrame) -> int:
    """Rollouts a problem's own score() failed on (harness/env/problem.py)."""
    if rollouts.empty:
        return 0
    return int(rollouts["message"].fillna("").str.startswith(SCORER_FAILED).sum())


def shortened_prompts(steps: pd.DataFrame, rollouts: pd.DataFrame) -> tuple[int, int]:
    """(prompts whose shown parent was shortened in the middle to fit, prompts in all)."""
    if "prompts/shortened" not in steps or steps.empty:
        return 0, 0
    total = len(rollouts.drop_duplicates(["arm", "seed", "step", "group"]))
    return int(steps["prompts/shortened"].fillna(0).sum()), total


def action_lengths(rollouts: pd.DataFrame) -> dict | None:
    """Tokens per rollout, the share whose answer was complete and the share cut at the
    token cap (not ended by EOS); None for folders that did not record them."""
    if rollouts.empty or "tokens" not in rollouts or "finished" not in rollouts:
        return None
    complete = rollouts["complete"].astype(bool).mean() if "complete" in rollouts else None
    return {"tokens": float(rollouts["tokens"].mean()), "complete": complete,
            "capped": float((~rollouts["finished"].astype(bool)).mean())}


def code_span(text: str) -> str:
    """`text` as a markdown code span, whatever backticks it holds."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


def write_report(folder: Path) -> Path:
    """(Re)write data/summary.csv, figures/*.png, report.md and the root's INDEX.md."""
    rec = load(folder)
    folder, plan, config = rec.folder, rec.plan, rec.config
    env = _env_meta(rec)
    direction, objective = env["direction"], env["objective"]
    runs = run_table(rec, direction)
    summary = summarize(rec, runs, direction)
    (folder / "data").mkdir(exist_ok=True)
    tmp = folder / "data" / f".summary.csv.{os.getpid()}.tmp"
    summary.to_csv(tmp, index=False)
    os.replace(tmp, folder / "data" / "summary.csv")  # whole: parallel tracks read it

    arms = [a["name"] for a in plan["arms"]]
    start = _best(runs["start_raw"], direction)
    start = None if math.isnan(start) else start
    fig_dir = folder / "figures"
    drawn = [
        ("Best so far", figures.best_so_far(rec.steps, arms, start, objective, direction,
                                            fig_dir / "best_so_far.png")),
        ("Reward distribution per step", figures.reward_distribution(
            rec.rollouts, arms, fig_dir / "reward_distribution.png")),
        ("Arm comparison", figures.arm_comparison(summary, runs, plan["baseline"], objective,
                                                  direction, fig_dir / "arm_comparison.png")),
        ("Valid fraction per step", figures.valid_fraction(rec.steps, arms,
                                                           fig_dir / "valid_fraction.png")),
    ]
    common, arm_setup = setup_rows(plan, config)
    rollouts_n = len(rec.rollouts)
    valid_all = float(rec.rollouts["valid"].astype(bool).mean()) if rollouts_n else None
    weak = weak_model_notes(summary, {a["name"]: a["action"] for a in arm_setup}, plan, env,
                            WEAK_VALID_FRAC)
    context = {
        "plan": plan, "env": env, "start": fmt(start), "common": common, "arms": arm_setup,
        "better": better(direction),
        "provenance": config.get("provenance", {}), "summary": summary.to_dict("records"),
        "fmt": fmt, "status": experiment_status(summary),
        "finished": summary.loc[summary["status"] == "finished", "arm"].tolist(),
        "unfinished": summary.loc[summary["status"] != "finished", "arm"].tolist(),
        "figures": [(t, p.relative_to(folder).as_posix()) for t, p in drawn if p],
        "valid_steps": valid_by_step(rec.steps, arms), "failures": failures(rec.rollouts),
        "scorer_failures": scorer_failures(rec.rollouts),
        "valid_all": valid_all, "rollouts_n": rollouts_n,
        "shortened": shortened_prompts(rec.steps, rec.rollouts),
        "lengths": action_lengths(rec.rollouts),
        "weak": weak, "code": code_span,
        "findings": findings(summary, plan["baseline"], direction, start,
                             identical_actions(rec.rollouts)),
        "unknowns": unknowns(summary, plan),
        "next_steps": next_steps(summary, plan, folder, direction, bool(weak)),
        "comments": read_comments(folder),
    }
    path = folder / "report.md"
    path.write_text(templates().get_template("report.md.j2").render(**context))
    write_index(folder.parent)
    write_findings(reports_root_of(folder))
    return path


def experiment_status(summary: pd.DataFrame) -> str:
    done, total = int(summary["runs_finished"].sum()), int(summary["runs"].sum())
    if done == total:
        return "complete"
    if summary["steps_done"].sum() == 0:
        return "not started"
    return f"incomplete ({done} of {total} runs finished)"


# --- the reports root ---
def list_experiments(root: Path) -> list[dict]:
    """Experiment folders under `root`, newest first, those of a sweep (or of a track's sweep)
    after it: name (relative to root, usable as a reference), sweep (the folder they sit in,
    or ""), request, status, best vs baseline."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []

    def newest_first(p: Path) -> tuple:
        top = p.relative_to(root).parts[0]
        return (top[:16], (root / top).stat().st_mtime, p.relative_to(root).as_posix())

    for folder in sorted(experiment_folders(root), key=newest_first, reverse=True):
        rec = load(folder)  # status from the data as it is now, not from an old report
        plan, status, best = rec.plan, "planned", "-"
        if not rec.steps.empty:
            direction = _env_meta(rec)["direction"]
            summary = summarize(rec, run_table(rec, direction), direction)
            status, best = experiment_status(summary), best_vs_baseline(summary, plan)
        elif rec.config:
            status = "not started"
        name = folder.relative_to(root).as_posix()
        out.append({"folder": folder, "name": name, "sweep": name.rpartition("/")[0],
                    "date": folder.name[:16],
                    "request": plan["request"], "status": status, "best": best})
    return out


def best_vs_baseline(summary: pd.DataFrame, plan: dict) -> str:
    scored = summary[summary["best_raw"].notna()]
    if scored.empty:
        return "-"
    direction = scored["direction"].iloc[0]
    top = scored.loc[best_index(scored["best_raw"], direction)]
    better_word = better(direction)
    base = scored[scored["arm"] == plan["baseline"]]
    if not base.empty and same_score(top["best_raw"], base["best_raw"].iloc[0]):
        return f"{plan['baseline']} {fmt(top['best_raw'])}, tied ({better_word} is better)"
    if top["arm"] == plan["baseline"] or base.empty:
        return f"{top['arm']} {fmt(top['best_raw'])} ({better_word} is better)"
    return (f"{top['arm']} {fmt(top['best_raw'])} vs {plan['baseline']} "
            f"{fmt(base['best_raw'].iloc[0])} ({better_word} is better)")


def write_index(root: Path) -> Path:
    """INDEX.md: one row per experiment folder (a sweep's are in its SWEEP.md), rebuilt from
    the folders."""
    lines = ["# Experiments", "", "Rebuilt from the folders by `harness report`; newest first.",
             "", "| date | request | best vs baseline | status | report |",
             "| --- | --- | --- | --- | --- |"]
    for e in [e for e in list_experiments(root) if not e["sweep"]]:
        request = e["request"].replace("|", "/")
        page = "report.md" if (e["folder"] / "report.md").exists() else "plan.json"
        lines.append(f"| {e['date']} | {request} | {e['best']} | {e['status']} | "
                     f"[{e['name']}]({e['name']}/{page}) |")
    path = Path(root) / "INDEX.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def reindex(root: Path) -> list[Path]:
    """Rebuild INDEX.md, FINDINGS.md and findings.csv from the folders under `root`."""
    Path(root).mkdir(parents=True, exist_ok=True)
    return [write_index(root), write_findings(root), Path(root) / FINDINGS_CSV]

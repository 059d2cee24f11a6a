"""The prose of a report: findings (with an honest word on noise), unknowns, next steps, and
the diagnosis when the model produces almost no valid action. Inputs are the per-arm summary
(data/summary.csv as a DataFrame) and the plan; outputs are plain sentences (markdown)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness.base.scores import beats, best_index, better, fmt
from harness.lab.stats import separated

WEAK_VALID_FRAC = 0.05  # below this the loop has (almost) no reward to learn from


def _is_better(a: float, b: float, direction: str) -> bool:
    return not same_score(a, b) and beats(a, b, direction)


def same_score(a: float, b: float) -> bool:
    """Equal up to float noise: a tie is never called a win (issue 18)."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def pooled_valid_frac(summary: pd.DataFrame) -> float | None:
    """The valid fraction over all rollouts of these summary rows (None without rollouts)."""
    ran = summary[summary["rollouts"] > 0]
    total = ran["rollouts"].sum()
    return float((ran["valid_frac"] * ran["rollouts"]).sum() / total) if total else None


def identical_actions(rollouts: pd.DataFrame) -> bool:
    """Whether every arm sampled exactly the same actions, in the same order (then no knob
    had any effect at this budget, whatever the scores say)."""
    if rollouts.empty or rollouts["arm"].nunique() < 2:
        return False
    texts = [tuple("" if pd.isna(t) else str(t) for t in
                   g.sort_values(["seed", "step", "group"], kind="stable")["text"])
             for _, g in rollouts.groupby("arm")]
    return all(t == texts[0] for t in texts)


def _verdict(row, base, direction: str) -> str:
    if same_score(row["mean_best"], base["mean_best"]):
        return "equal: no effect at this budget"
    if min(row["n"], base["n"]) < 2:
        return f"within noise / not enough seeds (n={int(min(row['n'], base['n']))})"
    if not separated(row, base):
        return "within noise (the 95% CIs overlap)"
    word = "better" if _is_better(row["mean_best"], base["mean_best"], direction) else "worse"
    return f"{word} than the baseline (the 95% CIs do not overlap)"


def findings(summary: pd.DataFrame, baseline: str, direction: str,
             start: float | None, same_actions: bool = False) -> list[str]:
    scored = summary[summary["n"] > 0]
    if scored.empty:
        return ["No step has finished yet: there is nothing to compare."]
    better_word = better(direction)
    top = scored.loc[best_index(scored["best_raw"], direction)]
    tied = [r["arm"] for _, r in scored.iterrows() if same_score(r["best_raw"], top["best_raw"])]
    if same_actions:
        out = [f"No effect at this budget: all arms sampled the same actions, so every arm "
               f"reached {fmt(top['best_raw'])} ({better_word} is better)."]
    elif len(tied) == len(scored) > 1:
        out = [f"No effect at this budget: every arm reached {fmt(top['best_raw'])} "
               f"({better_word} is better)."]
    elif len(tied) > 1:
        out = [f"Best result: a tie at {fmt(top['best_raw'])} ({better_word} is better) between "
               + ", ".join(f"`{a}`" for a in tied) + "."]
    else:
        out = [f"Best result: `{top['arm']}` reached {fmt(top['best_raw'])} "
               f"({better_word} is better)."]
    if start is not None:
        improved = [r["arm"] for _, r in scored.iterrows()
                    if _is_better(r["best_raw"], start, direction)]
        out.append(f"{len(improved)} of {len(scored)} arm(s) improved on the start state "
                   f"({fmt(start)})" + (f": {', '.join(improved)}." if improved else "."))
    base = scored[scored["arm"] == baseline]
    if base.empty:
        out.append(f"The baseline `{baseline}` has no finished step, so no arm is compared "
                   "with it.")
    else:
        b = base.iloc[0]
        for _, row in scored[scored["arm"] != baseline].iterrows():
            out.append(f"`{row['arm']}` vs `{baseline}`: mean best {fmt(row['mean_best'])} vs "
                       f"{fmt(b['mean_best'])}: {_verdict(row, b, direction)}.")
    unfinished = summary.loc[summary["status"] != "finished", "arm"].tolist()
    if unfinished:
        out.append(f"Not finished: {', '.join(unfinished)}; their numbers cover only the "
                   "steps completed so far.")
    return out


def unknowns(summary: pd.DataFrame, plan: dict) -> list[str]:
    settings = plan["settings"]
    per_step = settings.get("groups_per_step", 64) * settings.get("group_size", 8)
    out = []
    if (summary["n"] < 2).any():
        out.append("Seed-to-seed variation: with n=1 seed an arm's score is one draw, so no "
                   "difference in this report can be told apart from noise.")
    out.append(f"Whether the curves keep moving after {settings['steps']} steps of {per_step} "
               "rollouts (the paper runs 50 steps of 512 rollouts).")
    unfinished = summary.loc[summary["status"] != "finished", "arm"].tolist()
    if unfinished:
        out.append(f"How the unfinished arms ({', '.join(unfinished)}) end.")
    out.append(f"Whether the ranking holds for a larger model than `{plan['model']}`.")
    return out


def next_steps(summary: pd.DataFrame, plan: dict, folder: Path, direction: str,
               weak: bool) -> list[str]:
    out = []
    if (summary["status"] != "finished").any():
        out.append(f"Resume: `python {folder / 'experiment.py'}` (finished arms are not redone).")
    if weak:
        out.append("Make actions valid first (see Diagnostics): scores mean little until then.")
    if (summary["n"] < 2).any() or plan["budget"] in ("smoke", "small"):
        more = "--seeds 5" if plan["budget"] in ("medium", "paper") else "--budget medium"
        out.append(f"Repeat with more seeds: `harness experiment \"{plan['request']}\" {more}` "
                   "(medium runs 3 seeds per arm; best on a GPU).")
    edge = _grid_edge(summary, plan, direction)
    if edge:
        out.append(edge)
    return out


def _grid_edge(summary: pd.DataFrame, plan: dict, direction: str) -> str | None:
    """When the arms tune one number and the best arm is at an end of the grid, say so."""
    keys = {k for a in plan["arms"] for k in a["overrides"]} - {"groups_per_step", "objective"}
    scored = summary[summary["n"] > 0]
    if len(keys) != 1 or len(plan["arms"]) < 3 or scored.empty:
        return None
    key = keys.pop()
    values = {a["name"]: a["overrides"].get(key) for a in plan["arms"]}
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values.values()):
        return None
    top = scored.loc[best_index(scored["mean_best"], direction)]
    if (scored["mean_best"].map(lambda v: same_score(v, top["mean_best"]))).sum() > 1:
        return None  # a tie at the top points nowhere
    others = scored[scored["arm"] != top["arm"]]
    if any(not separated(top, r) for _, r in others.iterrows()):
        return None  # a best within noise points nowhere either: more seeds come first
    top = top["arm"]
    if values[top] in (min(values.values()), max(values.values())):
        return (f"The best {key} ({values[top]}) is at the edge of the grid: extend the grid "
                "beyond it before calling it the optimum.")
    return None


def weak_model_notes(summary: pd.DataFrame, arm_actions: dict[str, str], plan: dict,
                     env: dict, threshold: float) -> list[str]:
    """Plain sentences, one per action format whose arms produced almost no valid action:
    the model is too weak for this env and action, and what to try instead."""
    notes = []
    ran = summary[summary["rollouts"] > 0]
    for action in sorted({arm_actions.get(a, "auto") for a in ran["arm"]}):
        mine = ran[[arm_actions.get(a, "auto") == action for a in ran["arm"]]]
        valid = pooled_valid_frac(mine)
        if valid >= threshold:
            continue
        where = "" if len(mine) == len(ran) else f" in arm(s) {', '.join(mine['arm'])}"
        others = [a for a in env.get("actions", []) if a != action]
        tries = [f"the {a} action format (`harness experiment \"compare {action} vs {a} on "
                 f"{env['name']}\"`)" for a in others]
        tries += ["a bigger model (`--model <Hugging Face id or folder>`)",
                  "a GPU (`--budget medium`), where a bigger model is affordable"]
        notes.append(
            f"Almost nothing was valid{where} ({valid:.1%} of {int(mine['rollouts'].sum())} "
            f"rollouts): the model `{plan['model']}` is too weak for `{env['name']}` with "
            f"{action} actions, so the loop had (almost) no reward to learn from. Try "
            f"{'; or '.join(tries)}.")
    return notes

"""Research memory: experiments that build on earlier ones, and the researcher's comments.

    "like 2026-11-24_03-10-tune-beta-ahc039 but with group size 16"

names an earlier experiment (a folder name, a unique prefix of one, or `last`) and a change.
`plan_like` resolves the reference under the reports root, then plans: the offline planner
applies the change to the earlier plan (`apply_change`); the Claude planner gets the earlier
plan in its prompt. Either way the plan records `based_on` (the folder) and `difference`
(what changed, computed from the two plans by `describe_difference`).

Changes the offline planner understands, joined by "and" or commas: `<knob> <value>` with the
planner's knob words ("group size 16", "lr 1e-4", "c_puct 2"), "beta 4" (a constant beta:
objective entropic_const; the adaptive beta has no single value), "<n> seeds" and
"budget <name>". The value replaces the knob in every arm.

Comments (`comments.md`, one dated line each) are the researcher's notes on an experiment;
reports show them first and reviewers answer them (proposal.py, `comment_responses`).
"""

from __future__ import annotations

import json
import os
import re
import time
import typing
from dataclasses import dataclass
from pathlib import Path

from harness.config import Config
from harness.planner import (
    EXPERIMENT_BUDGETS,
    FIXED_KEYS,
    Plan,
    PlanError,
    fit_settings,
    validate_plan,
)

LIKE = re.compile(r"^\s*like\s+(?P<ref>\S+)\s+but\s+with\s+(?P<change>.+?)\s*[.!]?\s*$",
                  re.IGNORECASE | re.DOTALL)
COMMENTS_FILE = "comments.md"


# --- references to earlier experiments ---
def parse_like(request: str) -> tuple[str, str] | None:
    """("<reference>", "<change>") of a "like X but with Y" request, else None."""
    match = LIKE.match(request)
    return (match["ref"], match["change"]) if match else None


def experiment_folders(root: Path) -> list[Path]:
    """Experiment folders under the reports root (and inside its sweeps and its tracks'
    sweeps), by relative name."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p.parent for p in root.glob("*/plan.json")] + \
        [p.parent for p in root.glob("*/*/plan.json")] + \
        [p.parent for t in root.glob("*/tracks.json") for p in t.parent.glob("*/*/plan.json")]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def resolve_reference(ref: str, root: Path) -> Path:
    """The experiment folder `ref` names: a folder name, a unique prefix of one, or `last`
    (the newest top-level experiment). Unknown or ambiguous: one line listing candidates."""
    folders = experiment_folders(root)
    names = {p.relative_to(root).as_posix(): p for p in folders}
    if ref.lower() == "last":
        top = [n for n in names if "/" not in n]
        if not top:
            raise PlanError(f"'last' names no experiment: {root} has none")
        return names[max(top)]
    ref = ref.rstrip("/")
    if ref in names:
        return names[ref]
    hits = [n for n in names if n.startswith(ref) or n.split("/")[-1].startswith(ref)]
    if len(hits) == 1:
        return names[hits[0]]
    listed = hits or sorted(names)[-8:]
    what = "is ambiguous" if hits else "names no experiment"
    raise PlanError(f"{ref!r} {what}; candidates: {', '.join(listed) or '(none)'}")


# --- changes ---
@dataclass(frozen=True)
class Change:
    overrides: dict          # set in every arm
    seeds: int | None = None
    budget: str | None = None


def parse_change(text: str) -> Change:
    """'group size 16 and 3 seeds' -> Change; one-line PlanError for what is not understood."""
    from harness.offline_planner import KNOB_WORDS, _words

    overrides: dict = {}
    seeds = budget = None
    for part in [p for p in re.split(r"\s*(?:,|\band\b|;)\s*", text.strip()) if p]:
        part = re.sub(r"^(?:with|a|an)\s+", "", part.strip(), flags=re.IGNORECASE)
        if m := re.fullmatch(r"(\d+)\s+seeds?|seeds?\s*=?\s*(\d+)", part, re.IGNORECASE):
            seeds = int(m[1] or m[2])
            continue
        if m := re.fullmatch(r"(?:budget\s*=?\s*(\w+)|(\w+)\s+budget)", part, re.IGNORECASE):
            budget = (m[1] or m[2]).lower()
            if budget not in EXPERIMENT_BUDGETS:
                raise PlanError(f"unknown budget {budget!r}; budgets: "
                                f"{', '.join(EXPERIMENT_BUDGETS)}")
            continue
        m = re.fullmatch(r"(?P<knob>.+?)\s*(?:=|\s)\s*(?P<value>[^\s=]+)", part)
        if not m:
            raise PlanError(f"cannot apply {part!r}; say '<knob> <value>', '<n> seeds' or "
                            "'budget <name>'")
        word = _words(m["knob"])
        key = ("beta" if word in ("beta", "β", "constant beta") else KNOB_WORDS.get(word)
               or word.replace(" ", "_"))
        overrides[key] = _value(key, m["value"])
        if key == "beta":
            overrides["objective"] = "entropic_const"
    return Change(overrides, seeds, budget)


def _value(key: str, text: str):
    kind = typing.get_type_hints(Config).get(key)
    if kind is None or key in FIXED_KEYS:
        keys = [k for k in typing.get_type_hints(Config) if k not in FIXED_KEYS]
        raise PlanError(f"cannot change {key!r}; per-arm config keys: {', '.join(keys)}")
    try:
        if kind is bool:
            return {"true": True, "false": False, "on": True, "off": False}[text.lower()]
        return kind(float(text)) if kind is int else kind(text)
    except (ValueError, KeyError):
        raise PlanError(f"{key} must be {kind.__name__}, got {text!r}") from None


def apply_change(prior: dict, change: Change, budget: str | None = None,
                 seeds: int | None = None) -> dict:
    """The prior plan dict with `change` applied: its overrides set in every arm (a tuned
    group size keeps rollouts per step by also setting groups_per_step), seeds and budget."""
    varied = {k for k in change.overrides
              if len({json.dumps(a["overrides"].get(k)) for a in prior["arms"]}) > 1}
    if varied:
        raise PlanError(f"the arms of {prior['request']!r} vary {', '.join(sorted(varied))}; "
                        "setting it in every arm would make them equal")
    arms = []
    for arm in prior["arms"]:
        overrides = {**arm["overrides"], **change.overrides}
        if "group_size" in change.overrides and "groups_per_step" not in change.overrides:
            overrides.pop("groups_per_step", None)
        arms.append({**arm, "overrides": overrides})
    budget = budget or change.budget or prior["budget"]
    n_seeds = seeds or change.seeds or len(prior["seeds"])
    return {**prior, "arms": arms, "budget": budget, "seeds": list(range(n_seeds)),
            "settings": fit_settings(budget, arms, n_seeds)}


def describe_difference(prior: dict, new: dict) -> str:
    """What changed from `prior` to `new`: seeds, budget, arms added or removed, overrides."""
    parts = []
    if len(prior["seeds"]) != len(new["seeds"]):
        parts.append(f"seeds {len(prior['seeds'])} -> {len(new['seeds'])}")
    if prior["budget"] != new["budget"]:
        parts.append(f"budget {prior['budget']} -> {new['budget']}")
    old = {a["name"]: a["overrides"] for a in prior["arms"]}
    for arm in new["arms"]:
        before = old.get(arm["name"])
        if before is None:
            parts.append(f"new arm {arm['name']} {json.dumps(arm['overrides'], sort_keys=True)}")
            continue
        diff = [f"{k}={json.dumps(arm['overrides'].get(k))}"
                for k in sorted(set(before) | set(arm["overrides"]))
                if before.get(k) != arm["overrides"].get(k)]
        if diff:
            parts.append(f"{arm['name']}: {', '.join(diff)}")
    gone = [n for n in old if n not in [a["name"] for a in new["arms"]]]
    if gone:
        parts.append(f"dropped arm(s) {', '.join(gone)}")
    return "; ".join(parts) or "(no change)"


def plan_like(request: str, root: Path, budget: str | None, model: str, seeds: int | None,
              device: str, *, planner: str = "auto", max_retries: int = 2) -> Plan:
    """Plan "like <ref> but with <change>": resolve <ref> first (one-line PlanError listing
    candidates), then the offline planner applies the change, or Claude plans from the
    earlier plan in its prompt (falling back to the offline result)."""
    from harness.findings import ledger_text
    from harness.planner import DEFAULT_CLAUDE_MODEL, _one_line, claude_plan

    ref, text = parse_like(request)
    folder = resolve_reference(ref, root)
    based_on = folder.relative_to(root).as_posix()
    prior = json.loads((folder / "plan.json").read_text())
    prior.pop("rollouts_total", None)
    offline, problem = None, ""
    try:
        offline = apply_change(prior, parse_change(text), budget, seeds)
    except PlanError as err:
        problem = str(err)
    use_claude = planner == "claude" or (planner == "auto" and os.environ.get("ANTHROPIC_API_KEY"))
    fixed = {"request": request, "model": model, "device": device, "based_on": based_on}
    name = "offline"
    if use_claude:
        import anthropic

        base = offline or prior
        claude_model = os.environ.get("HARNESS_REVIEWER_MODEL", DEFAULT_CLAUDE_MODEL)
        fixed |= {"seeds": list(range(seeds or len(base["seeds"]))),
                  "budget": budget or base["budget"], "planner": f"claude ({claude_model})"}
        try:
            plan = claude_plan(request, fixed, max_retries=max_retries, prior=prior,
                               ledger=ledger_text(root, prior["env"]))
            return _with_difference(plan.to_dict(), prior)
        except (PlanError, anthropic.APIError) as err:
            name = f"offline (claude fallback: {_one_line(err)})"
    if offline is None:
        raise PlanError(problem)
    return _with_difference({**offline, **fixed, "planner": name,
                             "goal": f"{prior['goal']} (again, with {text})"}, prior)


def _with_difference(data: dict, prior: dict) -> Plan:
    data.pop("rollouts_total", None)
    return validate_plan({**data, "difference": describe_difference(prior, data)})


# --- comments ---
@dataclass(frozen=True)
class Comment:
    date: str   # YYYY-MM-DD HH:MM, when it was written
    text: str


def add_comment(folder: Path, text: str, when: str | None = None) -> Path:
    """Append a dated comment to `folder/comments.md` (made on the first comment)."""
    folder = Path(folder)
    if not (folder / "plan.json").exists():
        raise FileNotFoundError(f"{folder} is not an experiment folder (no plan.json)")
    text = " ".join(text.split())
    if not text:
        raise ValueError("a comment needs some text")
    path = folder / COMMENTS_FILE
    head = "" if path.exists() else "# Comments\n\n"
    with path.open("a") as f:
        f.write(f"{head}- {when or time.strftime('%Y-%m-%d %H:%M')}: {text}\n")
    return path


def read_comments(folder: Path) -> list[Comment]:
    path = Path(folder) / COMMENTS_FILE
    if not path.exists():
        return []
    lines = re.findall(r"^- (\d{4}-\d\d-\d\d \d\d:\d\d): (.+)$", path.read_text(), re.MULTILINE)
    return [Comment(d, t.strip()) for d, t in lines]

"""Research memory: experiments that build on earlier ones, and the researcher's comments.

    "like 2026-11-24_03-10-tune-beta-ahc039 but with group size 16"

names an earlier experiment (a folder name, a unique prefix of one, or `last`) and a change.
`read_like` resolves the reference under the reports root once; then the planner plans: the
offline planner applies the change to the earlier plan (`apply_change`); the Claude planner
gets the earlier plan in its prompt. Either way the plan records `based_on` (the folder) and
`difference` (what changed, computed from the two plans by `describe_difference`).

Changes the offline planner understands, joined by "and" or commas: `<knob> <value>` with the
planner's knob words ("group size 16", "lr 1e-4", "c_puct 2"), "beta 4" (a constant beta:
objective entropic_const; the adaptive beta has no single value), "<n> seeds" and
"budget <name>". The value replaces the knob in every arm.

Comments (`comments.md`, one dated line each) are the researcher's notes on an experiment;
reports show them first and reviewers answer them (proposal.py, `comment_responses`).
"""

from __future__ import annotations

import json
import re
import time
import typing
from dataclasses import dataclass
from pathlib import Path

from harness.base.config import BUDGETS, Config
from harness.base.errors import UserError
from harness.lab.folders import experiment_folder, read_plan, resolve_reference
from harness.lab.offline_planner import KNOB_WORDS, words
from harness.lab.plan import FIXED_KEYS, PlanError, fit_settings, matched_groups

LIKE = re.compile(r"^\s*like\s+(?P<ref>\S+)\s+but\s+with\s+(?P<change>.+?)\s*[.!]?\s*$",
                  re.IGNORECASE | re.DOTALL)
COMMENTS_FILE = "comments.md"


# --- references to earlier experiments ---
@dataclass(frozen=True)
class Like:
    """A request "like <ref> but with <change>", resolved once: the earlier folder, its plan."""
    change: str      # the words after "but with"
    based_on: str    # the earlier experiment's folder, relative to the reports root
    prior: dict      # its plan.json (without the derived rollouts_total)


def parse_like(request: str) -> tuple[str, str] | None:
    """("<reference>", "<change>") of a "like X but with Y" request, else None."""
    match = LIKE.match(request)
    return (match["ref"], match["change"]) if match else None


def read_like(request: str, root: Path) -> Like | None:
    """The resolved `Like` of a "like X but with Y" request under `root`, else None; a
    reference that names no experiment is a one-line FolderError listing candidates."""
    parsed = parse_like(request)
    if parsed is None:
        return None
    folder = resolve_reference(parsed[0], Path(root))
    prior = read_plan(folder)
    prior.pop("rollouts_total", None)
    return Like(parsed[1], folder.relative_to(root).as_posix(), prior)


# --- changes ---
@dataclass(frozen=True)
class Change:
    overrides: dict          # set in every arm
    seeds: int | None = None
    budget: str | None = None


def parse_change(text: str) -> Change:
    """'group size 16 and 3 seeds' -> Change; one-line PlanError for what is not understood."""
    overrides: dict = {}
    seeds = budget = None
    for part in [p for p in re.split(r"\s*(?:,|\band\b|;)\s*", text.strip()) if p]:
        part = re.sub(r"^(?:with|a|an)\s+", "", part.strip(), flags=re.IGNORECASE)
        if m := re.fullmatch(r"(\d+)\s+seeds?|seeds?\s*=?\s*(\d+)", part, re.IGNORECASE):
            seeds = int(m[1] or m[2])
            continue
        if m := re.fullmatch(r"(?:budget\s*=?\s*(\w+)|(\w+)\s+budget)", part, re.IGNORECASE):
            budget = (m[1] or m[2]).lower()
            if budget not in BUDGETS:
                raise PlanError(f"unknown budget {budget!r}; budgets: "
                                f"{', '.join(BUDGETS)}")
            continue
        if m := re.fullmatch(r"(program|construction)s?\s+actions?|actions?\s*=?\s*"
                             r"(program|construction)s?", part, re.IGNORECASE):
            overrides["action"] = (m[1] or m[2]).lower()
            continue
        m = re.fullmatch(r"(?P<knob>.+?)\s*(?:=|\s)\s*(?P<value>[^\s=]+)", part)
        if not m:
            raise PlanError(f"cannot apply {part!r}; say '<knob> <value>', '<n> seeds', "
                            "'program actions' or 'budget <name>'")
        word = words(m["knob"])
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
            before = Config().replace(**{**prior["settings"], **arm["overrides"]})
            overrides["groups_per_step"], _ = matched_groups(overrides["group_size"],
                                                             before.rollouts_per_step)
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


# --- comments ---
@dataclass(frozen=True)
class Comment:
    date: str   # YYYY-MM-DD HH:MM, when it was written
    text: str


def add_comment(folder: Path, text: str, when: str | None = None) -> Path:
    """Append a dated comment to `folder/comments.md` (made on the first comment)."""
    folder = experiment_folder(folder)
    text = " ".join(text.split())
    if not text:
        raise UserError("a comment needs some text")
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

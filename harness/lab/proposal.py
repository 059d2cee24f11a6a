"""Proposals: what a reviewer must return, and the declared search space it must stay in.

A proposal is the next experiment in executable form: title, hypothesis, env, arms as config
overrides inside `SEARCH_SPACE`, seeds, budget, a rationale with the numbers it used
(`evidence`, each checked against the numbers of the experiments' plans and summaries), and
`stop` when the question is answered. `validate_proposal` checks it (one-line ProposalError
saying why) and builds the next experiment's plan through the planner's own schema
(`validate_plan`), so a proposal that passes runs as it is. `Result` is what a reviewer reads
about one experiment (plan.json, data/summary.csv, report.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.base.config import ACTIONS, BUDGETS, OBJECTIVES, REUSE_RULES, Config
from harness.base.scores import sort_key
from harness.env import env_class
from harness.lab.folders import experiment_folder, read_plan
from harness.lab.memory import read_comments
from harness.lab.plan import FIXED_KEYS, Arm, Plan, PlanError, fit_settings, validate_plan
from harness.lab.report import write_report
from harness.lab.report_text import same_score

MAX_SEEDS = 8
BUDGET_ORDER = list(BUDGETS)  # smoke < small < medium < paper


class ProposalError(PlanError):
    """A proposal that breaks the schema or leaves the search space; one line saying why."""


# --- the declared search space: the only knobs a reviewer may turn ---
@dataclass(frozen=True)
class Knob:
    kind: type                  # the Config field's type
    low: float | None = None    # numeric knobs: inclusive bounds
    high: float | None = None
    choices: tuple = ()         # categorical knobs
    log: bool = False           # numeric knobs searched on a log scale (geometric midpoints)

    def problem(self, value) -> str | None:
        """Why `value` is outside this knob's range, or None."""
        if self.choices:
            ok = type(value) is self.kind and value in self.choices
            return None if ok else f"must be one of {', '.join(map(str, self.choices))}"
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                self.kind is int and not isinstance(value, int)):
            return f"must be {'an integer' if self.kind is int else 'a number'}"
        if not self.low <= value <= self.high:
            return f"must be within [{self.low:g}, {self.high:g}]"
        return None

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        scale = ", log scale" if self.log else ""
        return f"{self.kind.__name__} in [{self.low:g}, {self.high:g}]{scale}"


SEARCH_SPACE: dict[str, Knob] = {
    # objective
    "objective": Knob(str, choices=OBJECTIVES),
    "kl_target": Knob(float, 0.05, 4.0, log=True),
    "beta": Knob(float, 0.1, 32.0, log=True),
    # search (start-state selection)
    "reuse": Knob(str, choices=REUSE_RULES),
    "c_puct": Knob(float, 0.05, 16.0, log=True),
    "epsilon": Knob(float, 0.0, 0.5),
    "topk_children": Knob(int, 1, 8),
    # model / LoRA
    "train": Knob(bool, choices=(True, False)),
    "learning_rate": Knob(float, 1e-6, 1e-2, log=True),
    "lora_rank": Knob(int, 1, 64, log=True),
    # sampling
    "temperature": Knob(float, 0.2, 2.0),
    "action": Knob(str, choices=ACTIONS),
    # shape of a step (the budget bounds the total)
    "group_size": Knob(int, 2, 64, log=True),
    "groups_per_step": Knob(int, 1, 64, log=True),
}


def check_search_space(space: dict[str, Knob]) -> dict[str, Knob]:
    """Each knob is a per-arm Config field of the same type, with a sane range or choices."""
    hints = typing.get_type_hints(Config)
    for key, knob in space.items():
        if key not in hints or key in FIXED_KEYS:
            raise ValueError(f"search space knob {key!r} is not a per-arm config field")
        if hints[key] is not knob.kind:
            raise ValueError(f"search space knob {key!r} is {knob.kind.__name__}, the config "
                             f"field is {hints[key].__name__}")
        numeric = knob.low is not None and knob.high is not None and knob.low <= knob.high
        if not knob.choices and (not numeric or (knob.log and knob.low <= 0)):
            raise ValueError(f"search space knob {key!r} needs choices or low <= high "
                             "(low > 0 on a log scale)")
    return space


check_search_space(SEARCH_SPACE)


# --- what a reviewer reads ---
@dataclass(frozen=True)
class Result:
    """One experiment as a reviewer sees it: its plan, summary.csv, report, status."""
    index: int
    folder: Path
    plan: dict
    summary: pd.DataFrame      # data/summary.csv (empty when nothing finished)
    status: str                # done | failed
    error: str
    report: str

    @property
    def comments(self) -> list[str]:
        """The researcher's comments on this experiment (comments.md), "date: text" each."""
        return [f"{c.date}: {c.text}" for c in read_comments(self.folder)]

    @property
    def direction(self) -> str:
        return env_class(self.plan["env"]).direction

    @property
    def scored(self) -> bool:
        return self.status == "done" and not self.summary.empty and bool(
            (self.summary["n"] > 0).any())

    def ranked(self) -> list[dict]:
        """Arms with a score, best mean first; each row carries its arm's overrides."""
        if not self.scored:
            return []
        overrides = {a["name"]: a["overrides"] for a in self.plan["arms"]}
        rows = [{**r, "overrides": overrides.get(r["arm"], {})}
                for r in self.summary[self.summary["n"] > 0].to_dict("records")]
        key = sort_key(self.direction)
        return sorted(rows, key=lambda r: key(r["mean_best"]))

    def tied_best(self) -> list[str]:
        """The arms whose mean best equals the best arm's (a tie when more than one)."""
        ranked = self.ranked()
        return [r["arm"] for r in ranked if same_score(r["mean_best"], ranked[0]["mean_best"])]


def read_result(folder: Path, index: int = 0, status: str = "done", error: str = "") -> Result:
    """Read an experiment folder; a finished one without summary.csv gets its report rendered."""
    folder = experiment_folder(folder)
    summary_file = folder / "data" / "summary.csv"
    if status == "done" and not summary_file.exists() and (folder / "data" / "steps.csv").exists():
        write_report(folder)
    summary = (pd.read_csv(summary_file, dtype={"arm": str}) if summary_file.exists()
               else pd.DataFrame(columns=["arm", "n", "mean_best"]))
    report = (folder / "report.md").read_text() if (folder / "report.md").exists() else ""
    return Result(index, folder, read_plan(folder), summary,
                  status, error, report)


# --- the proposal schema ---
@dataclass(frozen=True)
class Proposal:
    title: str
    hypothesis: str
    env: str
    arms: tuple[Arm, ...]
    baseline: str
    seeds: int                 # seeds per arm: 0 .. seeds-1
    budget: str
    rationale: str
    evidence: tuple[dict, ...]  # {"what": str, "value": number} the rationale relies on
    stop: bool                 # the question is answered: run nothing more
    summary: str               # the reviewer's reading of the results so far
    comment_responses: tuple[dict, ...] = ()  # {comment, response}: each open comment answered

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["arms"], data["evidence"] = [dataclasses.asdict(a) for a in self.arms], \
            list(self.evidence)
        data["comment_responses"] = list(self.comment_responses)
        return data


PROPOSAL_FIELDS = tuple(f.name for f in dataclasses.fields(Proposal))
OPTIONAL_FIELDS = ("comment_responses",)  # required only when there are open comments
PROPOSAL_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "description": "The next experiment in a few words."},
        "hypothesis": {"type": "string", "description": "Expected outcome and why."},
        "env": {"type": "string"},
        "arms": {"type": "array", "items": {
            "type": "object", "required": ["name", "overrides"], "properties": {
                "name": {"type": "string"},
                "overrides": {"type": "object", "description": "search-space knob -> value"},
                "why": {"type": "string"}}}},
        "baseline": {"type": "string", "description": "The reference arm (empty if stop)."},
        "seeds": {"type": "integer", "minimum": 1, "maximum": MAX_SEEDS},
        "budget": {"type": "string", "enum": BUDGET_ORDER},
        "rationale": {"type": "string", "description": "Why this experiment, with numbers."},
        "evidence": {"type": "array", "items": {
            "type": "object", "required": ["what", "value"], "properties": {
                "what": {"type": "string"}, "value": {"type": "number"}}}},
        "stop": {"type": "boolean", "description": "True when the question is answered."},
        "summary": {"type": "string", "description": "Your reading of the results so far."},
        "comment_responses": {"type": "array", "description": "One per open comment: the "
                              "comment, copied, and what this proposal does about it.",
                              "items": {"type": "object", "required": ["comment", "response"],
                                        "properties": {"comment": {"type": "string"},
                                                       "response": {"type": "string"}}}},
    },
    "required": [f for f in PROPOSAL_FIELDS if f not in OPTIONAL_FIELDS],
}


@dataclass(frozen=True)
class Scope:
    """What bounds a proposal: the sweep's env, model, device and largest budget, the arms
    already run (arm key -> most seeds), and the numbers a rationale may cite."""
    env: str
    model: str
    device: str
    budget: str
    tried: dict
    facts: tuple[float, ...]
    comments: tuple[str, ...] = ()   # open comments: "<folder>: <date>: <text>", to be answered


def arm_key(budget: str, overrides: dict) -> str:
    return json.dumps([budget, overrides], sort_keys=True)


def make_scope(current: Result, history: list[Result], budget: str | None = None) -> Scope:
    tried: dict[str, int] = {}
    facts: list[float] = []
    for result in [*history, current]:
        plan = result.plan
        for arm in plan["arms"]:
            key = arm_key(plan["budget"], arm["overrides"])
            tried[key] = max(tried.get(key, 0), len(plan["seeds"]))
            facts += [v for v in arm["overrides"].values() if _number(v)]
        facts += [len(plan["seeds"]), plan["settings"]["steps"]]
        for row in result.summary.to_dict("records"):
            facts += [v for v in row.values() if _number(v) and not math.isnan(v)]
    plan = current.plan
    return Scope(plan["env"], plan["model"], plan["device"], budget or plan["budget"], tried,
                 tuple(float(f) for f in facts), open_comments(current, history))


def open_comments(current: Result, history: list[Result]) -> tuple[str, ...]:
    """Comments on these experiments that no review of an earlier one has answered yet."""
    answered = set()
    for result in history:
        review = result.folder / "review.json"
        if review.exists():
            responses = json.loads(review.read_text())["proposal"].get("comment_responses", [])
            answered |= {r["comment"] for r in responses}
    found = [f"{r.folder.name}: {c}" for r in [*history, current] for c in r.comments]
    return tuple(c for c in found if c not in answered)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_proposal(data: dict, scope: Scope) -> tuple[Proposal, Plan | None]:
    """A proposal dict -> (Proposal, the next experiment's Plan, or None when it stops)."""
    if not isinstance(data, dict):
        raise ProposalError("a proposal must be a JSON object")
    missing = [k for k in PROPOSAL_FIELDS if k not in data and k not in OPTIONAL_FIELDS]
    extra = sorted(set(data) - set(PROPOSAL_FIELDS))
    if missing or extra:
        raise ProposalError(f"proposal lacks {', '.join(missing)}" if missing else
                            f"unexpected fields {extra}; allowed: {list(PROPOSAL_FIELDS)}")
    if not isinstance(data["stop"], bool):
        raise ProposalError("stop must be true or false")
    stop = data["stop"]
    for key in ("title", "rationale", "summary") + (() if stop else ("hypothesis", "baseline")):
        if not isinstance(data[key], str) or not data[key].strip():
            raise ProposalError(f"proposal field {key!r} must be a non-empty string")
    if data["env"] != scope.env:
        raise ProposalError(f"env must stay {scope.env!r} (the sweep's question), "
                            f"got {data['env']!r}")
    if data["budget"] not in BUDGET_ORDER[:BUDGET_ORDER.index(scope.budget) + 1]:
        raise ProposalError(f"budget {data['budget']!r} is not allowed; use one of "
                            f"{', '.join(BUDGET_ORDER[:BUDGET_ORDER.index(scope.budget) + 1])}")
    seeds = data["seeds"]
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= MAX_SEEDS:
        raise ProposalError(f"seeds must be an integer from 1 to {MAX_SEEDS}")
    evidence = _check_evidence(data["evidence"], scope, required=not stop)
    responses = _check_responses(data.get("comment_responses", []), scope)
    arms = data["arms"] if isinstance(data["arms"], list) else None
    if arms is None or (not arms and not stop):
        raise ProposalError("arms must be a non-empty list of {name, overrides, why}")
    for arm in arms:
        _check_in_space(arm)
    proposal = Proposal(data["title"].strip(), str(data["hypothesis"]).strip(), data["env"],
                        tuple(Arm(a["name"], dict(a["overrides"]), str(a.get("why", "")))
                              for a in arms), str(data["baseline"]), seeds, data["budget"],
                        data["rationale"].strip(), evidence, stop, data["summary"].strip(),
                        responses)
    if stop:
        return proposal, None
    plan = proposal_plan(proposal, scope, planner="reviewer")
    keys = [arm_key(plan.budget, a.overrides) for a in plan.arms]
    if all(scope.tried.get(k, 0) >= len(plan.seeds) for k in keys):
        raise ProposalError("every arm was already run with at least as many seeds: propose "
                            "something new, or stop")
    return proposal, plan


def _check_in_space(arm) -> None:
    if not isinstance(arm, dict) or not isinstance(arm.get("overrides"), dict):
        raise ProposalError("each arm needs a name and an overrides object")
    for key, value in arm["overrides"].items():
        if key not in SEARCH_SPACE:
            raise ProposalError(f"arm {arm.get('name')!r} sets {key!r}, which is outside the "
                                f"search space; knobs: {', '.join(SEARCH_SPACE)}")
        problem = SEARCH_SPACE[key].problem(value)
        if problem:
            raise ProposalError(f"arm {arm.get('name')!r}: {key}={value!r} is outside the "
                                f"search space ({key} {problem})")


def _check_evidence(evidence, scope: Scope, required: bool) -> tuple[dict, ...]:
    if not isinstance(evidence, list) or (required and not evidence):
        raise ProposalError("evidence must list the numbers the rationale uses "
                            "({what, value} each)")
    out = []
    for item in evidence:
        if not (isinstance(item, dict) and isinstance(item.get("what"), str)
                and _number(item.get("value"))):
            raise ProposalError("each evidence item needs 'what' (text) and 'value' (a number)")
        value = float(item["value"])
        if not any(math.isclose(value, f, rel_tol=1e-3, abs_tol=1e-9) for f in scope.facts):
            raise ProposalError(f"evidence {item['what']!r} = {value:g} is not a number from "
                                "the experiments' plans or summaries; cite those numbers")
        out.append({"what": item["what"], "value": value})
    return tuple(out)


def _check_responses(responses, scope: Scope) -> tuple[dict, ...]:
    if not isinstance(responses, list) or not all(
            isinstance(r, dict) and isinstance(r.get("comment"), str)
            and isinstance(r.get("response"), str) and r["response"].strip() for r in responses):
        raise ProposalError("comment_responses must be a list of {comment, response} (text)")
    given = {r["comment"].strip() for r in responses}
    unanswered = [c for c in scope.comments if c not in given]
    if unanswered:
        raise ProposalError(f"answer each open comment in comment_responses (copied exactly); "
                            f"unanswered: {unanswered[0]!r}")
    return tuple({"comment": r["comment"].strip(), "response": r["response"].strip()}
                 for r in responses)


def proposal_plan(proposal: Proposal, scope: Scope, planner: str) -> Plan:
    """The next experiment's plan, through the planner's schema and the budget's limits."""
    arms = [dataclasses.asdict(a) for a in proposal.arms]
    try:
        settings = fit_settings(proposal.budget, arms, proposal.seeds)
        return validate_plan({
            "request": proposal.title, "goal": proposal.title, "hypothesis": proposal.hypothesis,
            "env": proposal.env, "arms": arms, "baseline": proposal.baseline,
            "seeds": list(range(proposal.seeds)), "budget": proposal.budget,
            "model": scope.model, "device": scope.device, "planner": planner,
            "settings": settings})
    except PlanError as err:
        raise ProposalError(str(err)) from None

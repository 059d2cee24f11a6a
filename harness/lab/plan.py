"""Experiment plans: the schema, its validation, the steps that fit a budget, and the paper's
ablation table.

A plan (`plan.json`) turns a request such as "tune entropic temperature on erdos" into arms:
named config overrides against the defaults, each run for every seed with the budget's
settings (`config.BUDGETS`). Both planners (planner.py) end in `validate_plan`.
"""

from __future__ import annotations

import re
import typing
from dataclasses import asdict, dataclass

from harness.base.config import (
    BUDGETS,
    SCALED_DOWN_EVAL,
    Config,
    ConfigError,
    current_key,
    field_names,
)
from harness.base.errors import UserError, message
from harness.env import ENVS, EnvError, env_class


class PlanError(UserError):
    """A request that cannot be planned, or a plan that breaks the schema; one line."""


MIN_STEPS = 2  # one update and one step that samples from the updated policy
FIXED_KEYS = ("env", "model", "device", "seed", "steps")  # experiment-level, not per arm
ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]{0,63}$")


# --- the schema ---
@dataclass(frozen=True)
class Arm:
    name: str
    overrides: dict
    why: str = ""


@dataclass(frozen=True)
class Plan:
    request: str
    goal: str
    hypothesis: str
    env: str
    arms: tuple[Arm, ...]
    baseline: str
    seeds: tuple[int, ...]
    budget: str
    model: str
    device: str
    planner: str
    settings: dict       # the budget's settings, steps fitted to the budget
    based_on: str = ""   # the experiment folder this plan starts from ("like X but with Y")
    difference: str = ""  # what changed from that experiment's plan, in words

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def config(self, arm: str, seed: int) -> Config:
        return Config().replace(**{"env": self.env, "model": self.model, "device": self.device,
                                   **self.settings, **self.arm(arm).overrides, "seed": seed})

    @property
    def rollouts_total(self) -> int:
        return sum(self.config(a.name, s).rollouts_per_step * self.settings["steps"]
                   for a in self.arms for s in self.seeds)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["arms"], data["seeds"] = [asdict(a) for a in self.arms], list(self.seeds)
        if not self.based_on:  # plans that build on nothing keep their old shape
            del data["based_on"], data["difference"]
        return {**data, "rollouts_total": self.rollouts_total}


CLAUDE_FIELDS = ("goal", "hypothesis", "env", "arms", "baseline")
PLAN_SCHEMA = {  # what the Claude planner must return (the rest is filled in by the harness)
    "type": "object",
    "properties": {
        "goal": {"type": "string", "description": "One sentence: what the experiment finds out."},
        "hypothesis": {"type": "string", "description": "The expected outcome and why."},
        "env": {"type": "string", "enum": list(ENVS)},
        "arms": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "overrides"], "properties": {
                "name": {"type": "string", "pattern": ARM_NAME.pattern},
                "overrides": {"type": "object", "description": "config field -> value"},
                "why": {"type": "string"}}}},
        "baseline": {"type": "string", "description": "Name of the reference arm."},
    },
    "required": list(CLAUDE_FIELDS),
}


def validate_plan(data: dict) -> Plan:
    """A plan dict (plan.json, or Claude's answer merged with the fixed fields) -> `Plan`."""
    if not isinstance(data, dict):
        raise PlanError("a plan must be a JSON object")
    required = ("request", "goal", "hypothesis", "env", "arms", "baseline", "seeds", "budget",
                "model", "device", "planner", "settings")
    missing = [k for k in required if k not in data]
    if missing:
        raise PlanError(f"plan lacks {', '.join(missing)}")
    for key in ("request", "goal", "hypothesis", "env", "baseline", "model", "planner"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise PlanError(f"plan field {key!r} must be a non-empty string")
    try:
        env_class(data["env"])  # a built-in, or a problem file or module:Class that loads
    except EnvError as err:
        raise PlanError(str(err)) from None
    if data["budget"] not in BUDGETS:
        raise PlanError(f"unknown budget {data['budget']!r}; "
                        f"budgets: {', '.join(BUDGETS)}")
    seeds = data["seeds"]
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                       for s in seeds)):
        raise PlanError("seeds must be a non-empty list of distinct non-negative integers")
    arms = _check_arms(data["arms"], data["settings"])
    actions = env_class(data["env"]).actions + ("auto",)
    for arm in arms:
        if arm.overrides.get("action", "auto") not in actions:
            raise PlanError(f"arm {arm.name!r}: env {data['env']} supports actions "
                            f"{', '.join(actions)}")
    if data["baseline"] not in [a.name for a in arms]:
        raise PlanError(f"baseline {data['baseline']!r} is not one of the arms")
    plan = Plan(data["request"], data["goal"], data["hypothesis"], data["env"], tuple(arms),
                data["baseline"], tuple(seeds), data["budget"], data["model"],
                str(data["device"]), data["planner"],
                _with_scaled_down_eval(data["budget"], data["settings"]),
                str(data.get("based_on", "")), str(data.get("difference", "")))
    _check_budget(plan)
    return plan


def _with_scaled_down_eval(budget: str, settings: dict) -> dict:
    """Plans written before the released evaluation settings became the Config defaults ran
    with a 10 s program budget and 8 AtCoder cases without saying so: a scaled-down budget's
    plan that lacks them gets its budget's back, so a resumed run evaluates as it began."""
    kept = {k: v for k, v in BUDGETS[budget].settings.items()
            if k in SCALED_DOWN_EVAL}
    return {**kept, **settings}


def _check_arms(arms, settings) -> list[Arm]:
    if not isinstance(arms, list) or not arms:
        raise PlanError("arms must be a non-empty list")
    if not isinstance(settings, dict) or not isinstance(settings.get("steps"), int):
        raise PlanError("settings must be config overrides including steps")
    out: list[Arm] = []
    for arm in arms:
        if not isinstance(arm, dict) or not isinstance(arm.get("overrides"), dict):
            raise PlanError("each arm needs a name and an overrides object")
        name = arm.get("name")
        overrides = {current_key(k): v for k, v in arm["overrides"].items()}  # old key names
        if not isinstance(name, str) or not ARM_NAME.match(name):
            raise PlanError(f"arm name {name!r} must match {ARM_NAME.pattern}")
        if name in [a.name for a in out]:
            raise PlanError(f"two arms are named {name!r}")
        fixed = sorted(set(overrides) & set(FIXED_KEYS))
        if fixed:
            raise PlanError(f"arm {name!r} overrides {fixed[0]!r}, which is set per experiment")
        overrides = {k: _typed(k, v) for k, v in overrides.items()}
        try:
            Config().replace(**{**settings, **overrides})
        except ConfigError as err:
            raise PlanError(f"arm {name!r}: {err}") from None
        out.append(Arm(name, overrides, str(arm.get("why", ""))))
    return out


def _typed(key: str, value):
    """A JSON value checked against the type of config field `key` (ints accepted as floats)."""
    kind = typing.get_type_hints(Config).get(key)
    if kind is None:
        raise PlanError(f"unknown config key {key!r}; valid keys: {', '.join(field_names())}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:
        raise PlanError(f"{key} must be {kind.__name__}, got {value!r}")
    return value


def _check_budget(plan: Plan) -> None:
    budget = BUDGETS[plan.budget]
    if len(plan.arms) > budget.max_arms:
        raise PlanError(f"{len(plan.arms)} arms exceed the {plan.budget} budget's "
                        f"{budget.max_arms}; use fewer arms or a larger --budget")
    if plan.rollouts_total > budget.max_rollouts:
        raise PlanError(f"the plan needs {plan.rollouts_total} rollouts; the {plan.budget} "
                        f"budget allows {budget.max_rollouts}: use fewer arms or seeds, "
                        f"or a larger --budget")


def fit_settings(budget: str, arms: list[dict], n_seeds: int) -> dict:
    """The budget's settings with steps cut so that every arm and seed fits the budget."""
    spec = BUDGETS[budget]
    settings = dict(spec.settings)
    base = Config().replace(**settings)
    try:
        per_step = sum(base.replace(**a["overrides"]).rollouts_per_step for a in arms) * n_seeds
    except (ConfigError, TypeError) as err:
        raise PlanError(message(err)) from None
    steps = min(base.steps, spec.max_rollouts // max(per_step, 1))
    if steps < MIN_STEPS:
        raise PlanError(f"{len(arms)} arms x {n_seeds} seeds do not fit the {budget} budget "
                        f"({spec.max_rollouts} rollouts, at least {MIN_STEPS} steps each); "
                        "use fewer arms or seeds, or a larger --budget")
    return {**settings, "steps": steps}


# --- matched compute ---
def matched_groups(group_size: int, rollouts_per_step: int) -> tuple[int, str]:
    """Groups per step that keep `rollouts_per_step` at `group_size`, and what that gives:
    "same rollouts per step" only when it really does (issue 18). The one rule every planner
    and reviewer applies when an arm changes group_size."""
    groups = max(1, rollouts_per_step // group_size)
    actual = groups * group_size
    if actual == rollouts_per_step:
        return groups, "same rollouts per step"
    return groups, (f"{actual} rollouts per step, not {rollouts_per_step}: "
                    f"{actual / rollouts_per_step:.3g}x the compute of the others")


# --- the paper's ablation table ---
ABLATIONS: dict[str, tuple[dict, str]] = {  # the paper's ablation table, as configurations
    "full": ({"reuse": "puct", "objective": "entropic_adaptive"},
             "the full method: PUCT reuse and the adaptive entropic objective"),
    "constant_beta": ({"objective": "entropic_const", "beta": 2.0},
                      "entropic objective with a constant beta = 2"),
    "no_entropic": ({"objective": "mean"}, "mean baseline advantages r - mean(r)"),
    "no_training": ({"train": False}, "PUCT reuse with a frozen model"),
    "eps_greedy": ({"reuse": "eps_greedy"}, "epsilon-greedy start-state reuse"),
    "no_reuse": ({"reuse": "none"}, "every group starts from the initial state"),
    "best_of_n": ({"reuse": "none", "objective": "none"},
                  "no reuse and no training: plain sampling"),
}

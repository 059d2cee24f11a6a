"""Experiment plans: the schema and its validation, the experiment budgets, and two planners.

A plan (`plan.json`) turns a request such as "tune entropic temperature on erdos" into arms:
named config overrides against the defaults, each run for every seed with the budget's
settings. The offline planner (offline_planner.py) reads a small grammar with the paper's
vocabulary and is deterministic; the Claude planner (when ANTHROPIC_API_KEY is set) asks
Claude for the same JSON through a tool schema, retries once on an invalid answer, then falls
back to the offline planner and says so in the plan's `planner` field. Both go through
`validate_plan`.
"""

from __future__ import annotations

import json
import os
import re
import typing
from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2

from harness.config import SCALED_DOWN_EVAL, SCALED_DOWN_SAMPLING, Config, ConfigError, field_names
from harness.env import ENVS, env_class


class PlanError(ValueError):
    """A request that cannot be planned, or a plan that breaks the schema; one line."""


# --- budgets: what a whole experiment may spend ---
@dataclass(frozen=True)
class Budget:
    settings: dict       # config overrides of every run (steps is the most per arm and seed)
    seeds: int           # seeds per arm unless --seeds says otherwise
    max_arms: int
    max_rollouts: int    # bound on arms x seeds x steps x rollouts per step
    grid: int            # values in a tuning grid (3 or 5)


# small: ~2.5 s per rollout on 2 CPU cores with smollm2 since actions end at their answer
# (issue 19), so 288 rollouts (3 arms x 8 steps x 2 groups x 6) take about 12 minutes.
EXPERIMENT_BUDGETS: dict[str, Budget] = {
    "smoke": Budget(dict(steps=2, groups_per_step=1, group_size=4, max_new_tokens=16,
                         lora_rank=4, learning_rate=1e-3, **SCALED_DOWN_EVAL,
                         **SCALED_DOWN_SAMPLING), seeds=1, max_arms=4, max_rollouts=64, grid=3),
    # lr 1e-3: in 4-6 steps it is what lets the policy learn the action format (same seeds,
    # erdos, smollm2: valid 83.7% vs 72.9% without training; at 1e-4 training changed little)
    "small": Budget(dict(steps=8, groups_per_step=2, group_size=6, max_new_tokens=160,
                         learning_rate=1e-3, **SCALED_DOWN_EVAL, **SCALED_DOWN_SAMPLING),
                    seeds=1, max_arms=4, max_rollouts=288, grid=3),
    "medium": Budget(dict(steps=10, groups_per_step=4, group_size=8, max_new_tokens=512,
                          **SCALED_DOWN_EVAL, **SCALED_DOWN_SAMPLING),
                     seeds=3, max_arms=8, max_rollouts=8 * 3 * 10 * 32, grid=5),
    # the released configuration (the Config defaults): 50 steps of 64 groups x 8 rollouts
    "paper": Budget(dict(), seeds=3, max_arms=8, max_rollouts=8 * 3 * 50 * 512, grid=5),
}
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
    if data["env"] not in ENVS:
        raise PlanError(f"unknown env {data['env']!r}; envs: {', '.join(ENVS)}")
    if data["budget"] not in EXPERIMENT_BUDGETS:
        raise PlanError(f"unknown budget {data['budget']!r}; "
                        f"budgets: {', '.join(EXPERIMENT_BUDGETS)}")
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
    kept = {k: v for k, v in EXPERIMENT_BUDGETS[budget].settings.items()
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
        name, overrides = arm.get("name"), dict(arm["overrides"])
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
    budget = EXPERIMENT_BUDGETS[plan.budget]
    if len(plan.arms) > budget.max_arms:
        raise PlanError(f"{len(plan.arms)} arms exceed the {plan.budget} budget's "
                        f"{budget.max_arms}; use fewer arms or a larger --budget")
    if plan.rollouts_total > budget.max_rollouts:
        raise PlanError(f"the plan needs {plan.rollouts_total} rollouts; the {plan.budget} "
                        f"budget allows {budget.max_rollouts}: use fewer arms or seeds, "
                        f"or a larger --budget")


def fit_settings(budget: str, arms: list[dict], n_seeds: int) -> dict:
    """The budget's settings with steps cut so that every arm and seed fits the budget."""
    spec = EXPERIMENT_BUDGETS[budget]
    settings = dict(spec.settings)
    base = Config().replace(**settings)
    try:
        per_step = sum(base.replace(**a["overrides"]).rollouts_per_step for a in arms) * n_seeds
    except (ConfigError, TypeError) as err:
        raise PlanError(str(err).splitlines()[0]) from None
    steps = min(base.steps, spec.max_rollouts // max(per_step, 1))
    if steps < MIN_STEPS:
        raise PlanError(f"{len(arms)} arms x {n_seeds} seeds do not fit the {budget} budget "
                        f"({spec.max_rollouts} rollouts, at least {MIN_STEPS} steps each); "
                        "use fewer arms or seeds, or a larger --budget")
    return {**settings, "steps": steps}


# --- the paper's ablation table ---
ABLATIONS: dict[str, tuple[dict, str]] = {  # the paper's ablation table, as configurations
    "full": ({"sampler": "puct", "objective": "entropic_adaptive"},
             "the full method: PUCT reuse and the adaptive entropic objective"),
    "constant_beta": ({"objective": "entropic_const", "beta": 2.0},
                      "entropic objective with a constant beta = 2"),
    "no_entropic": ({"objective": "mean"}, "mean baseline advantages r - mean(r)"),
    "no_training": ({"train": False}, "PUCT reuse with a frozen model"),
    "eps_greedy": ({"sampler": "eps_greedy"}, "epsilon-greedy start-state reuse"),
    "no_reuse": ({"sampler": "none"}, "every group starts from the initial state"),
    "best_of_n": ({"sampler": "none", "objective": "none"},
                  "no reuse and no training: plain sampling"),
}


# --- the Claude planner ---
DEFAULT_CLAUDE_MODEL = "claude-sonnet-5-5"  # claude-sonnet-4-5 retires 2026-11-30
PLAN_TOOL = {"name": "submit_plan", "description": "Submit the experiment plan.",
             "input_schema": PLAN_SCHEMA}


def claude_plan(request: str, fixed: dict, *, max_retries: int = 2, prior: dict | None = None,
                ledger: str = "") -> Plan:
    """Ask Claude for the plan (a `submit_plan` tool call); one retry on an invalid answer.
    `prior`: the plan of the experiment the request builds on, shown in the prompt."""
    import anthropic

    client = anthropic.Anthropic(max_retries=max_retries, timeout=120.0)
    prompt = render_prompt(request, fixed, prior=prior, ledger=ledger)
    problem = ""
    for _ in range(2):
        content = prompt + (f"\n\nYour previous answer was invalid: {problem}. Call submit_plan "
                            "again with a corrected plan." if problem else "")
        message = client.messages.create(
            model=os.environ.get("HARNESS_REVIEWER_MODEL", DEFAULT_CLAUDE_MODEL),
            max_tokens=2048, tools=[PLAN_TOOL],
            tool_choice={"type": "tool", "name": PLAN_TOOL["name"]},
            messages=[{"role": "user", "content": content}])
        try:
            answer = reply_json(message)
            extra = sorted(set(answer) - set(CLAUDE_FIELDS))
            if extra:
                raise PlanError(f"unexpected fields {extra}; allowed: {list(CLAUDE_FIELDS)}")
            arms = answer.get("arms") if isinstance(answer.get("arms"), list) else []
            settings = fit_settings(fixed["budget"], [a for a in arms if isinstance(a, dict)
                                                      and isinstance(a.get("overrides"), dict)],
                                    len(fixed["seeds"]))
            return validate_plan({**answer, **fixed, "settings": settings})
        except PlanError as err:
            problem = str(err)
    raise PlanError(f"invalid plan twice ({problem})")


def reply_json(message) -> dict:
    """The plan in a Messages API reply: the tool call's input, or JSON text as a fallback."""
    for block in message.content:
        if block.type == "tool_use":
            return dict(block.input)
    text = "".join(getattr(b, "text", "") for b in message.content).strip()
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PlanError(f"the reply is not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise PlanError("the reply is not a JSON object")
    return data


def render_prompt(request: str, fixed: dict, *, prior: dict | None = None,
                  ledger: str = "") -> str:
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    budget = EXPERIMENT_BUDGETS[fixed["budget"]]
    envs = [env_class(n) for n in ENVS]
    return templates.get_template("plan_prompt.md.j2").render(
        request=request, envs=envs, ablations=ABLATIONS, defaults=Config().to_dict(),
        fixed_keys=FIXED_KEYS, budget_name=fixed["budget"], budget=budget,
        n_seeds=len(fixed["seeds"]), prior=json.dumps(prior, indent=2) if prior else "",
        based_on=fixed.get("based_on", ""), ledger=ledger)


# --- entry point ---
def make_plan(request: str, budget: str | None, model: str, seeds: int | None, device: str, *,
              planner: str = "auto", max_retries: int = 2, root: Path | None = None) -> Plan:
    """Plan with Claude when planner is 'claude', or 'auto' and ANTHROPIC_API_KEY is set;
    otherwise (or when Claude fails) with the offline planner. A request "like <experiment>
    but with <change>" starts from that experiment's plan under `root` (memory.py); budget
    None then means the earlier experiment's."""
    from harness.memory import parse_like, plan_like

    if root is not None and parse_like(request):
        return plan_like(request, Path(root), budget, model, seeds, device, planner=planner,
                         max_retries=max_retries)
    if budget not in EXPERIMENT_BUDGETS:
        raise PlanError(f"unknown budget {budget!r}; budgets: {', '.join(EXPERIMENT_BUDGETS)}")
    if seeds is not None and seeds < 1:
        raise PlanError("seeds must be at least 1")
    use_claude = planner == "claude" or (planner == "auto" and os.environ.get("ANTHROPIC_API_KEY"))
    from harness.offline_planner import offline_plan

    if not use_claude:
        return _with_ledger(offline_plan(request, budget, model, seeds, device), root)
    import anthropic

    from harness.findings import ledger_text

    n_seeds = seeds or EXPERIMENT_BUDGETS[budget].seeds
    claude_model = os.environ.get("HARNESS_REVIEWER_MODEL", DEFAULT_CLAUDE_MODEL)
    fixed = {"request": request, "seeds": list(range(n_seeds)), "budget": budget,
             "model": model, "device": device, "planner": f"claude ({claude_model})"}
    try:
        return claude_plan(request, fixed, max_retries=max_retries,
                           ledger=ledger_text(root) if root is not None else "")
    except (PlanError, anthropic.APIError) as err:
        reason = _one_line(err)
    return _with_ledger(offline_plan(request, budget, model, seeds, device,
                                     planner=f"offline (claude fallback: {reason})"), root)


def _with_ledger(plan: Plan, root: Path | None) -> Plan:
    """The offline planner reads the findings ledger: settled findings on the knobs its arms
    set are named in the hypothesis, with the reason for running them again."""
    from dataclasses import replace

    from harness.findings import settled_about

    if root is None:
        return plan
    keys = {k for a in plan.arms for k in a.overrides}
    settled = settled_about(root, plan.env, keys)
    if not settled:
        return plan
    note = "; ".join(f"'{f.claim}' is {f.status}" for f in settled)
    return replace(plan, hypothesis=f"{plan.hypothesis} Ledger: {note}; run again because the "
                                    "request asks for it (at this budget and these seeds).")


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__

"""From a request to a plan: the Claude planner, the offline one, and "like X but with Y".

A plan (plan.py) turns a request such as "tune entropic temperature on erdos" into arms.
The offline planner (offline_planner.py) reads a small grammar with the paper's
vocabulary and is deterministic; the Claude planner (when ANTHROPIC_API_KEY is set) asks
Claude for the same JSON through a tool schema, retries once on an invalid answer, then falls
back to the offline planner and says so in the plan's `planner` field. Both go through
`validate_plan`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

from harness.base.config import BUDGETS, Config, default_budget
from harness.base.errors import one_line
from harness.base.resources import templates
from harness.base.scores import better
from harness.env import ENVS, EnvError, env_class, make_env
from harness.env.registry import absolute, entry_points, is_file_spec
from harness.lab.findings import ledger_text, settled_about
from harness.lab.memory import Like, apply_change, describe_difference, parse_change, read_like
from harness.lab.offline_planner import modifiers, offline_plan
from harness.lab.plan import (
    ABLATIONS,
    CLAUDE_FIELDS,
    FIXED_KEYS,
    PLAN_SCHEMA,
    Plan,
    PlanError,
    fit_settings,
    validate_plan,
)

# --- the Claude planner ---
DEFAULT_CLAUDE_MODEL = "claude-sonnet-5-5"  # claude-sonnet-4-5 retires 2026-11-30
PLAN_TOOL = {"name": "submit_plan", "description": "Submit the experiment plan.",
             "input_schema": PLAN_SCHEMA}


def problems_named(request: str) -> dict[str, type]:
    """The problem specs a request names besides the built-in envs (a .py file, module:Class,
    an installed package's problem) that load: spec -> env class."""
    found, installed = {}, entry_points()
    for word in request.split():
        word = word.strip("'\"`,;")
        spec = absolute(word)
        if word in ENVS or not (is_file_spec(word) or ":" in word or word in installed):
            continue
        try:
            found[spec] = env_class(spec)
        except EnvError:
            continue  # the offline planner says what is wrong with it
    return found


def plan_tool(request: str) -> dict:
    """PLAN_TOOL, its env enum widened to the problems the request names."""
    schema = json.loads(json.dumps(PLAN_SCHEMA))
    schema["properties"]["env"]["enum"] = [*ENVS, *problems_named(request)]
    return {**PLAN_TOOL, "input_schema": schema}


def claude_plan(request: str, fixed: dict, *, max_retries: int = 2, prior: dict | None = None,
                ledger: str = "") -> Plan:
    """Ask Claude for the plan (a `submit_plan` tool call); one retry on an invalid answer.
    `prior`: the plan of the experiment the request builds on, shown in the prompt."""
    import anthropic

    client = anthropic.Anthropic(max_retries=max_retries, timeout=120.0)
    prompt = render_prompt(request, fixed, prior=prior, ledger=ledger)
    tool = plan_tool(request)
    problem = ""
    for _ in range(2):
        content = prompt + (f"\n\nYour previous answer was invalid: {problem}. Call submit_plan "
                            "again with a corrected plan." if problem else "")
        message = client.messages.create(
            model=claude_model(),
            max_tokens=2048, tools=[tool], tool_choice={"type": "tool", "name": tool["name"]},
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
    budget = BUDGETS[fixed["budget"]]
    envs = [(n, env_class(n)) for n in ENVS] + list(problems_named(request).items())
    return templates(trim=False).get_template("plan_prompt.md.j2").render(
        request=request, envs=envs, better=better, ablations=ABLATIONS, defaults=Config().to_dict(),
        fixed_keys=FIXED_KEYS, budget_name=fixed["budget"], budget=budget,
        n_seeds=len(fixed["seeds"]), prior=json.dumps(prior, indent=2) if prior else "",
        based_on=fixed.get("based_on", ""), ledger=ledger)


# --- entry point ---
def make_plan(request: str, budget: str | None, model: str | None, seeds: int | None,
              device: str, *, planner: str = "auto", max_retries: int = 2,
              root: Path | None = None) -> Plan:
    """Plan with Claude when planner is 'claude', or 'auto' and ANTHROPIC_API_KEY is set;
    otherwise (or when Claude fails, said on stderr too) with the offline planner. A request
    "like <experiment> but with <change>" starts from that experiment's plan under `root`
    (read once here); `model` and `budget` None then mean the earlier experiment's, else the
    Config default model and `default_budget(device)`. `device` is this machine's; a plan
    that cannot run here (an env or "on GPU" that needs CUDA) is refused with one line."""
    like = read_like(request, Path(root)) if root is not None else None
    model = model or (like.prior["model"] if like else Config().model)
    if like is not None:
        plan = _plan_like(request, like, Path(root), budget, model, seeds, device,
                          planner=planner, max_retries=max_retries)
    else:
        plan = _plan_new(request, budget, model, seeds, device, planner, max_retries, root)
    check_runs_here(plan, device)
    return plan


def _plan_new(request: str, budget: str | None, model: str, seeds: int | None, device: str,
              planner: str, max_retries: int, root: Path | None) -> Plan:
    budget = budget or default_budget(device)
    if budget not in BUDGETS:
        raise PlanError(f"unknown budget {budget!r}; budgets: {', '.join(BUDGETS)}")
    if seeds is not None and seeds < 1:
        raise PlanError("seeds must be at least 1")
    if not _use_claude(planner):
        return _with_ledger(offline_plan(request, budget, model, seeds, device), root)
    import anthropic

    _, mods = modifiers(request)
    n_seeds = seeds or mods.seeds or BUDGETS[budget].seeds
    fixed = {"request": request, "seeds": list(range(n_seeds)), "budget": budget,
             "model": model, "device": mods.device or device,
             "planner": f"claude ({claude_model()})"}
    try:
        plan = claude_plan(request, fixed, max_retries=max_retries,
                           ledger=ledger_text(root) if root is not None else "")
        return replace(plan, settings={**plan.settings, "steps": mods.steps}) \
            if mods.steps else plan
    except (PlanError, anthropic.APIError) as err:
        reason = one_line(err)
    fallback_notice(reason)
    try:
        offline = offline_plan(request, budget, model, seeds, device,
                               planner=f"offline (claude fallback: {reason})")
    except PlanError as err:
        raise PlanError(f"Claude was tried first and failed ({reason[:120]}); then {err}") \
            from None
    return _with_ledger(offline, root)


def fallback_notice(reason: str) -> None:
    """The console line when Claude's plan fails and the offline planner takes over (plan.json
    says it too, in `planner`)."""
    print(f"planner: Claude could not plan ({reason}); the offline planner plans instead",
          file=sys.stderr, flush=True)


def check_runs_here(plan: Plan, device: str) -> None:
    """PlanError (one line, before any folder is made) when `plan` cannot run on this machine,
    whose device is `device`: it asks for CUDA, or its env refuses to start here."""
    if plan.device.startswith("cuda") and not device.startswith("cuda"):
        raise PlanError(f"{plan.request!r} asks for a GPU and this machine has no CUDA device; "
                        "drop 'on GPU' or run it on a GPU machine")
    try:
        make_env(plan.env)
    except EnvError as err:
        raise PlanError(f"{plan.env} cannot run on this machine: {one_line(err)}") from None


def _use_claude(planner: str) -> bool:
    return planner == "claude" or (planner == "auto" and bool(os.environ.get("ANTHROPIC_API_KEY")))


def claude_model() -> str:
    """The Claude model the planner and the reviewer ask ($HARNESS_REVIEWER_MODEL)."""
    return os.environ.get("HARNESS_REVIEWER_MODEL", DEFAULT_CLAUDE_MODEL)


def _plan_like(request: str, like: Like, root: Path, budget: str | None, model: str,
               seeds: int | None, device: str, *, planner: str, max_retries: int) -> Plan:
    """Plan "like <ref> but with <change>": the offline planner applies the change to the
    earlier plan, or Claude plans from it in its prompt (falling back to the offline
    result). The plan records `based_on` and `difference`."""
    prior, offline, problem = like.prior, None, ""
    try:
        offline = apply_change(prior, parse_change(like.change), budget, seeds)
    except PlanError as err:
        problem = str(err)
    fixed = {"request": request, "model": model, "device": device, "based_on": like.based_on}
    name = "offline"
    if _use_claude(planner):
        import anthropic

        base = offline or prior
        fixed |= {"seeds": list(range(seeds or len(base["seeds"]))),
                  "budget": budget or base["budget"], "planner": f"claude ({claude_model()})"}
        try:
            plan = claude_plan(request, fixed, max_retries=max_retries, prior=prior,
                               ledger=ledger_text(root, prior["env"]))
            return _with_difference(plan.to_dict(), prior)
        except (PlanError, anthropic.APIError) as err:
            name = f"offline (claude fallback: {one_line(err)})"
            fallback_notice(one_line(err))
            problem = f"Claude was tried first and failed ({one_line(err)[:120]}); then {problem}"
    if offline is None:
        raise PlanError(problem)
    return _with_difference({**offline, **fixed, "planner": name,
                             "goal": f"{prior['goal']} (again, with {like.change})"}, prior)


def _with_difference(data: dict, prior: dict) -> Plan:
    data.pop("rollouts_total", None)
    return validate_plan({**data, "difference": describe_difference(prior, data)})


def _with_ledger(plan: Plan, root: Path | None) -> Plan:
    """The offline planner reads the findings ledger: settled findings on the knobs its arms
    set are named in the hypothesis, with the reason for running them again."""
    if root is None:
        return plan
    keys = {k for a in plan.arms for k in a.overrides}
    settled = settled_about(root, plan.env, keys)
    if not settled:
        return plan
    note = "; ".join(f"'{f.claim}' is {f.status}" for f in settled)
    return replace(plan, hypothesis=f"{plan.hypothesis} Ledger: {note}; run again because the "
                                    "request asks for it (at this budget and these seeds).")

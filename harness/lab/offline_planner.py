"""The offline planner: a small grammar over the paper's vocabulary, deterministic.

Understood requests (anything else is a one-line PlanError listing these and the envs):
  tune <knob> on <env>          a grid of a few values around the default (3 or 5, by budget)
  ablate <component> on <env>   the paper's ablation arms (entropic, reuse, training, all)
  compare <a> vs <b> on <env>   ablation arms, reuse/objective/action values, key=value
  run <env>                     the full method alone
Tuning the entropic temperature means tuning `kl_target`: beta is adaptive by default.
"""

from __future__ import annotations

import re
import unicodedata

from harness.base.config import (
    BUDGETS,
    REUSE_RULES,
    Config,
    ConfigError,
    field_names,
    parse_overrides,
)
from harness.base.scores import better
from harness.env import ENVS, EnvError, env_class
from harness.env.registry import absolute
from harness.lab.plan import (
    ABLATIONS,
    FIXED_KEYS,
    Plan,
    PlanError,
    fit_settings,
    matched_groups,
    validate_plan,
)

COMPONENTS = {"entropic": ["full", "constant_beta", "no_entropic"],
              "reuse": ["full", "eps_greedy", "no_reuse"],
              "training": ["full", "no_training", "best_of_n"],
              "all": list(ABLATIONS)}
COMPONENT_WORDS = {
    "entropic": "entropic", "entropic objective": "entropic", "objective": "entropic",
    "beta": "entropic", "β": "entropic", "entropic temperature": "entropic",
    "reuse": "reuse", "state reuse": "reuse", "puct": "reuse", "buffer": "reuse",
    "search": "reuse", "sampler": "reuse", "start states": "reuse",
    "training": "training", "ttt": "training", "test time training": "training",
    "lora": "training", "learning": "training",
    "all": "all", "everything": "all", "the paper": "all", "paper": "all",
}
ARM_WORDS = {
    "full": "full", "full ttt": "full", "ttt": "full", "ttt discover": "full",
    "default": "full", "defaults": "full", "constant beta": "constant_beta",
    "constant β": "constant_beta", "fixed beta": "constant_beta", "no entropic": "no_entropic",
    "mean": "no_entropic", "mean baseline": "no_entropic", "no training": "no_training",
    "frozen": "no_training", "no ttt": "no_training", "eps greedy": "eps_greedy",
    "ε greedy": "eps_greedy", "epsilon greedy": "eps_greedy", "no reuse": "no_reuse",
    "best of n": "best_of_n", "bon": "best_of_n",
}
KNOB_WORDS = {
    "entropic temperature": "kl_target", "temperature of the entropic objective": "kl_target",
    "kl target": "kl_target", "kl": "kl_target", "adaptive beta": "kl_target",
    "beta": "kl_target", "β": "kl_target", "constant beta": "beta", "constant β": "beta",
    "fixed beta": "beta", "puct c": "c_puct", "puct exploration": "c_puct",
    "exploration": "c_puct", "exploration constant": "c_puct", "c": "c_puct",
    "group size": "group_size", "learning rate": "learning_rate", "lr": "learning_rate",
    "lora rank": "lora_rank", "rank": "lora_rank", "sampling temperature": "temperature",
    "temperature": "temperature", "epsilon": "epsilon", "ε": "epsilon",
    "reuse": "reuse", "sampler": "reuse", "start state selection": "reuse",
    "objective": "objective",
    "action format": "action", "groups": "groups_per_step",
}
MULTIPLIERS = {"kl_target": (0.25, 0.5, 1, 1.5, 2), "learning_rate": (0.1, 0.3, 1, 3, 10),
               "temperature": (0.5, 0.75, 1, 1.25, 1.5)}
CHOICES = {"reuse": REUSE_RULES,
           "objective": ("entropic_adaptive", "entropic_const", "mean"),
           "action": ("construction", "program"), "train": (True, False)}
GRAMMAR = ("'tune <knob> on <env>', 'ablate <entropic|reuse|training|all> on <env>', "
           "'compare <arm> vs <arm> on <env>', 'run <env>'")


def words(text: str) -> str:
    """Lower case, accents and punctuation folded: 'Best-of-N' -> 'best of n'."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = re.sub(r"[-_/,]+", " ", text.lower())
    return re.sub(r"\s+", " ", text).strip().removeprefix("the ").strip()


def _env(word: str) -> str:
    """A built-in env's name (lenient about case and punctuation), or a problem spec (a .py
    file, module:Class, an installed package's name) checked by loading it."""
    name = words(word).replace(" ", "")
    if name in ENVS:
        return name
    spec = absolute(word)
    try:
        env_class(spec)
    except EnvError as err:
        raise PlanError(str(err)) from None
    return spec


def offline_plan(request: str, budget: str, model: str, seeds: int | None, device: str,
                 planner: str = "offline") -> Plan:
    """Deterministic plan from the grammar in GRAMMAR; anything else is a one-line PlanError."""
    text = request.strip().rstrip(".!?")
    patterns = [
        (r"(?:tune|sweep|vary|scan)\s+(?P<what>.+?)\s+(?:on|for|in)\s+(?P<env>\S+)", _tune),
        (r"(?:ablate|ablations?)(?:\s+(?:of\s+)?(?P<what>.+?))?\s+on\s+(?P<env>\S+)", _ablate),
        (r"compare\s+(?P<what>.+?)\s+on\s+(?P<env>\S+)", _compare),
        (r"(?:run|discover)(?:\s+on)?\s+(?P<env>\S+)", _run),
    ]
    for pattern, build in patterns:
        match = re.fullmatch(pattern, text, re.IGNORECASE)
        if match:
            env = _env(match["env"])
            goal, hypothesis, arms, baseline = build((match.groupdict().get("what") or ""),
                                                     env, budget)
            break
    else:
        raise PlanError(f"cannot plan {request!r}: I understand {GRAMMAR}; "
                        f"envs: {', '.join(ENVS)}")
    n_seeds = seeds or BUDGETS[budget].seeds
    return validate_plan({
        "request": request, "goal": goal, "hypothesis": hypothesis, "env": env, "arms": arms,
        "baseline": baseline, "seeds": list(range(n_seeds)), "budget": budget, "model": model,
        "device": device, "planner": planner,
        "settings": fit_settings(budget, arms, n_seeds)})


def _objective(env: str) -> str:
    cls = env_class(env)
    return f"{cls.objective} ({better(cls.direction)} is better)"


def _tune(what: str, env: str, budget: str):
    word = words(what)
    key = KNOB_WORDS.get(word) or (word.replace(" ", "_") if word.replace(" ", "_") in
                                   field_names() else None)
    if key is None or key in FIXED_KEYS + ("eval_workers", "eval_timeout_s", "buffer_size"):
        raise PlanError(f"cannot tune {what!r}; knobs: entropic temperature (kl_target), "
                        "constant beta, PUCT c (c_puct), group size, learning rate, LoRA rank, "
                        "sampling temperature, epsilon, reuse (sampler), objective, action")
    base = Config().replace(**BUDGETS[budget].settings)
    default = getattr(base, key)
    values = _grid(key, default, BUDGETS[budget].grid)
    arms = [_tune_arm(key, v, base) for v in values]
    baseline = next(a["name"] for a, v in zip(arms, values, strict=True) if v == default)
    goal = f"Which {key} gives the best {_objective(env)} on {env}?"
    return goal, _tune_hypothesis(key, values, default), arms, baseline


def _grid(key: str, default, size: int) -> list:
    if key in CHOICES:
        return list(CHOICES[key])
    multipliers = MULTIPLIERS.get(key, (0.25, 0.5, 1, 2, 4))
    multipliers = multipliers[1:4] if size == 3 else multipliers
    if isinstance(default, bool) or not isinstance(default, int | float):
        raise PlanError(f"cannot tune {key}: not a number")
    if isinstance(default, int):
        low = 2 if key == "group_size" else 1
        values = [max(low, round(default * m)) for m in multipliers]
    else:
        values = [float(f"{default * m:.4g}") if m != 1 else default for m in multipliers]
    return sorted(set(values), key=values.index)


def _tune_arm(key: str, value, base: Config) -> dict:
    overrides = {key: value}
    why = f"{key} = {value:.4g}" if isinstance(value, float) else f"{key} = {value}"
    if key == "group_size":  # the same rollouts per step where the budget allows
        overrides["groups_per_step"], matched = matched_groups(value, base.rollouts_per_step)
        why += f" with {overrides['groups_per_step']} groups ({matched})"
    if key == "beta":
        overrides["objective"] = "entropic_const"
    name = f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
    return {"name": name.replace("True", "true").replace("False", "false"),
            "overrides": overrides, "why": why}


def _tune_hypothesis(key: str, values: list, default) -> str:
    grid = ", ".join(str(v) for v in values)
    if key == "kl_target":
        return ("The entropic temperature beta is adaptive: each group's beta solves "
                "KL(q_beta || uniform) = kl_target (default ln 2), so tuning the entropic "
                "temperature means tuning the KL target. A larger target gives a larger beta "
                "(advantages concentrate on each group's best action, closer to learning from "
                "the max); a smaller one gives a softer, mean-like signal. Expected: the "
                f"default {default:.3g} is near the best of {grid}, with extreme values "
                "worse.")
    if key == "beta":
        return (f"With a constant beta (objective entropic_const), beta in {grid} trades "
                "learning from the group's best actions (large beta) against a mean-like "
                f"signal (small beta). Expected: the paper's default {default} is near the best.")
    return (f"Values {grid} of {key} around the default {default}; expected: the default is "
            "near the best and the extremes are worse or within noise.")


def _ablate(what: str, env: str, budget: str):
    component = COMPONENT_WORDS.get(words(what) or "all")
    if component is None:
        raise PlanError(f"cannot ablate {what!r}; components: entropic, reuse, training, all")
    arms = [{"name": n, "overrides": dict(ABLATIONS[n][0]), "why": ABLATIONS[n][1]}
            for n in COMPONENTS[component]]
    goal = (f"How much does each part of TTT-Discover ({component}) contribute to the best "
            f"{_objective(env)} on {env}?")
    hypothesis = ("As in the paper's ablation table, the full method (PUCT reuse + adaptive "
                  "entropic objective + test-time training) reaches the best score and each "
                  "ablated arm is worse; at small budgets the gaps may be within noise.")
    return goal, hypothesis, arms, "full"


def _compare(what: str, env: str, budget: str):
    sides = [s for s in re.split(r"\s+(?:vs\.?|versus|against|and)\s+|\s*,\s*", what) if s]
    if len(sides) < 2:
        raise PlanError(f"compare needs two arms or more, as in 'compare no reuse vs "
                        f"best-of-N on {env}'")
    arms = [_compare_arm(s) for s in sides]
    baseline = "full" if "full" in [a["name"] for a in arms] else arms[0]["name"]
    names = " vs ".join(a["name"] for a in arms)
    goal = f"Which of {names} gives the best {_objective(env)} on {env}?"
    hypothesis = (f"{baseline} is the reference; the other arms differ from it only in their "
                  "overrides, so a gap outside the seeds' noise is caused by those settings.")
    return goal, hypothesis, arms, baseline


def _compare_arm(text: str) -> dict:
    if "=" in text:
        try:
            overrides = parse_overrides(text.replace(",", " ").split())
        except ConfigError as err:
            raise PlanError(str(err)) from None
        return {"name": "+".join(f"{k}={v}" for k, v in overrides.items()),
                "overrides": overrides, "why": text}
    word = words(text)
    if word in ARM_WORDS:
        name = ARM_WORDS[word]
        return {"name": name, "overrides": dict(ABLATIONS[name][0]), "why": ABLATIONS[name][1]}
    for key, choices in CHOICES.items():
        if word.replace(" ", "_") in choices:
            value = word.replace(" ", "_")
            return {"name": value, "overrides": {key: value}, "why": f"{key} = {value}"}
    raise PlanError(f"unknown arm {text!r}; arms: {', '.join(ABLATIONS)}, a reuse rule, an "
                    "objective, an action or key=value settings")


def _run(what: str, env: str, budget: str):
    goal = f"How far does TTT-Discover get on {env} ({_objective(env)}) with the {budget} budget?"
    hypothesis = "The best-so-far score improves on the start state within the budget."
    return goal, hypothesis, [{"name": "full", "overrides": dict(ABLATIONS["full"][0]),
                               "why": ABLATIONS["full"][1]}], "full"

"""The offline planner: a small grammar over the paper's vocabulary, deterministic.

Understood requests (anything else is a one-line PlanError listing these and the envs, with
a "did you mean" for a near-miss knob or env):
  tune <knob> on <env>          a grid of a few values around the default (3 or 5, by budget)
  ablate <component> on <env>   the paper's ablation arms (entropic, reuse, training, all)
  does <component> help on <env>?   the same ablation
  compare <a> vs <b> on <env>   ablation arms, reuse/objective/action values, key=value
  run <env>                     the full method alone
Each may add "with N seeds", "for N steps" and "on GPU" / "on CPU" (`modifiers`). An env is
its name or an alias (ENV_ALIASES: "circle packing" asks which of cp26 and cp32). Tuning the
entropic temperature means tuning `kl_target`: beta is adaptive by default.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass

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
ENV_ALIASES = {
    "circle packing": ("cp26", "cp32"), "circle_packing": ("cp26", "cp32"),
    "circles": ("cp26", "cp32"), "circle packing 26": ("cp26",), "circle packing 32": ("cp32",),
    "erdos minimum overlap": ("erdos",), "minimum overlap": ("erdos",), "erdős": ("erdos",),
    "autocorrelation": ("ac1", "ac2"), "first autocorrelation": ("ac1",),
    "second autocorrelation": ("ac2",), "triangle multiplication": ("trimul",),
    "tri mul": ("trimul",), "atcoder": ("ahc039", "ahc058"),
}
GRAMMAR = ("'tune <knob> on <env>', 'ablate <entropic|reuse|training|all> on <env>', "
           "'does <component> help on <env>', 'compare <arm> vs <arm> on <env>', 'run <env>' "
           "(each may add 'with N seeds', 'for N steps', 'on GPU|CPU')")
KNOBS_HELP = ("entropic temperature (kl_target), constant beta, PUCT c (c_puct), group size, "
              "learning rate, LoRA rank, sampling temperature, epsilon, reuse (sampler), "
              "objective, action")


@dataclass(frozen=True)
class Modifiers:
    """What a request says besides its verb, knob and env: "with 3 seeds", "for 20 steps",
    "on GPU". None: not said."""
    seeds: int | None = None
    steps: int | None = None
    device: str | None = None


def modifiers(request: str) -> tuple[str, Modifiers]:
    """(the request without its modifiers, the modifiers)."""
    found: dict = {}
    rules = [(r"\b(?:with|using|over|across)\s+(\d+)\s+seeds?\b", "seeds"),
             (r"\b(?:for|with|over)\s+(\d+)\s+steps?\b", "steps"),
             (r"\b(?:on|using)\s+(?:an?\s+|the\s+)?(gpu|cuda|cpu)s?\b", "device")]
    text = request
    for pattern, key in rules:
        if m := re.search(pattern, text, re.IGNORECASE):
            value = m[1].lower()
            found[key] = {"gpu": "cuda"}.get(value, value) if key == "device" else int(value)
            text = (text[:m.start()] + " " + text[m.end():])
    text = re.sub(r"\s+", " ", text).strip().rstrip(".!?,").strip()
    if found.get("seeds") == 0 or found.get("steps") == 0:
        raise PlanError(f"{request!r}: seeds and steps must be at least 1")
    return text, Modifiers(**found)


def did_you_mean(word: str, known) -> str:
    """' (did you mean X?)' for a near miss among `known`, else ''."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def words(text: str) -> str:
    """Lower case, accents and punctuation folded: 'Best-of-N' -> 'best of n'."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = re.sub(r"[-_/,]+", " ", text.lower())
    return re.sub(r"\s+", " ", text).strip().removeprefix("the ").strip()


def _env(word: str) -> str:
    """A built-in env's name or alias (lenient about case and punctuation), or a problem spec
    (a .py file, module:Class, an installed package's name) checked by loading it."""
    phrase = words(word)
    name = phrase.replace(" ", "")
    if name in ENVS:
        return name
    aliases = ENV_ALIASES.get(phrase) or ENV_ALIASES.get(word.strip().lower())
    if aliases and len(aliases) == 1:
        return aliases[0]
    if aliases:
        raise PlanError(f"{word!r} is {' or '.join(aliases)}: which one? Say e.g. "
                        f"'... on {aliases[0]}'")
    spec = absolute(word)
    try:
        env_class(spec)
    except EnvError as err:
        hint = did_you_mean(name, ENVS) or did_you_mean(phrase, ENV_ALIASES)
        raise PlanError(str(err) + hint) from None
    return spec


def offline_plan(request: str, budget: str, model: str, seeds: int | None, device: str,
                 planner: str = "offline") -> Plan:
    """Deterministic plan from the grammar in GRAMMAR; anything else is a one-line PlanError."""
    text, mods = modifiers(request)
    env_at_end = r"(?P<env>[^\s].*?)"  # the rest: an env may be more than one word
    patterns = [
        (rf"(?:tune|sweep|vary|scan)\s+(?P<what>.+?)\s+(?:on|for|in)\s+{env_at_end}", _tune),
        (rf"(?:ablate|ablations?)(?:\s+(?:of\s+)?(?P<what>.+?))?\s+on\s+{env_at_end}",
         _ablate),
        (rf"(?:does|do|would|will|is|can)\s+(?P<what>.+?)\s+(?:really\s+)?(?:help|matter|"
         rf"pay off|improve (?:things|results))s?\s+(?:on|for|in|with)\s+{env_at_end}", _ablate),
        (rf"compare\s+(?P<what>.+?)\s+on\s+{env_at_end}", _compare),
        (rf"(?:run|discover)(?:\s+on)?\s+{env_at_end}", _run),
    ]
    for pattern, build in patterns:
        match = re.fullmatch(pattern, text, re.IGNORECASE)
        if match:
            env = _env(match["env"])
            goal, hypothesis, arms, baseline = build((match.groupdict().get("what") or ""),
                                                     env, budget)
            break
    else:
        verb = (text.split() or [""])[0].lower()
        hint = did_you_mean(verb, ("tune", "ablate", "compare", "run", "does"))
        raise PlanError(f"cannot plan {request!r}{hint}: I understand {GRAMMAR}; "
                        f"envs: {', '.join(ENVS)}")
    n_seeds = seeds or mods.seeds or BUDGETS[budget].seeds
    settings = fit_settings(budget, arms, n_seeds)
    if mods.steps:
        settings["steps"] = mods.steps
    return validate_plan({
        "request": request, "goal": goal, "hypothesis": hypothesis, "env": env, "arms": arms,
        "baseline": baseline, "seeds": list(range(n_seeds)), "budget": budget, "model": model,
        "device": mods.device or device, "planner": planner, "settings": settings})


def _objective(env: str) -> str:
    cls = env_class(env)
    return f"{cls.objective} ({better(cls.direction)} is better)"


def _tune(what: str, env: str, budget: str):
    word = words(what)
    key = KNOB_WORDS.get(word) or (word.replace(" ", "_") if word.replace(" ", "_") in
                                   field_names() else None)
    if key is None or key in FIXED_KEYS + ("eval_workers", "eval_timeout_s", "buffer_size"):
        hint = did_you_mean(word, list(KNOB_WORDS) + field_names())
        raise PlanError(f"cannot tune {what!r}{hint}; knobs: {KNOBS_HELP}")
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
        hint = did_you_mean(words(what), COMPONENT_WORDS)
        raise PlanError(f"cannot ablate {what!r}{hint}; components: entropic, reuse, "
                        "training, all")
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

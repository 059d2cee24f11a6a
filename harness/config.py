"""One flat, frozen configuration for a TTT-Discover run.

Field names are the `config.json` keys, the `--set key=value` names and the CSV columns of a
sweep. Ablations of the paper are values of `sampler`, `objective` and `train`, not code paths.
Budget presets (`BUDGETS`) scale the paper's defaults down to what a machine can afford.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass

SAMPLERS = ("puct", "eps_greedy", "greedy", "none")
OBJECTIVES = ("entropic_adaptive", "entropic_const", "mean", "none")
ACTIONS = ("auto", "program", "construction")
FAST_SAMPLER = ("auto", "on", "off")
EVAL_EXECUTORS = ("local", "ray")


class ConfigError(ValueError):
    """A bad configuration value or key; the message is one line meant for the user."""


@dataclass(frozen=True)
class Config:
    # --- problem ---
    env: str = "erdos"
    """Environment name (see `harness envs`)."""
    action: str = "auto"
    """Action format: program (model writes code), construction (model writes the object), auto."""

    # --- model / LoRA ---
    model: str = "smollm2"
    """smollm2 (embedded), tiny (random, tests), a Hugging Face id or a local folder."""
    lora_rank: int = 32
    """LoRA rank on every attention and MLP projection."""
    lora_alpha: float = 32.0
    """LoRA scaling numerator (scale = alpha / rank)."""
    learning_rate: float = 4e-5
    """Adam learning rate for the LoRA weights."""
    train: bool = True
    """False freezes the model (the 'no training' ablation)."""

    # --- sampling ---
    temperature: float = 1.0
    """Sampling temperature of the policy."""
    max_new_tokens: int = 1024
    """Cap on generated tokens per action."""
    prompt_max_tokens: int = 2048
    """Prompts longer than this are cut from the left."""
    fast_sampler: str = "auto"
    """Static-cache, CUDA-graph sampler (harness/fast_sampler.py): auto (on for CUDA), on, off."""

    # --- search (start-state selection) ---
    sampler: str = "puct"
    """Start-state selection: puct, eps_greedy, greedy (best state), none (always the initial)."""
    c_puct: float = 1.0
    """PUCT exploration constant c."""
    epsilon: float = 0.1
    """eps_greedy: probability of a uniformly random start state."""
    topk_children: int = 2
    """Children kept per parent after each step."""
    buffer_size: int = 1000
    """Buffer cap (initial states always kept)."""

    # --- objective ---
    objective: str = "entropic_adaptive"
    """Advantages: entropic_adaptive, entropic_const, mean (r - mean r), none (no update)."""
    beta: float = 2.0
    """Entropic temperature for entropic_const."""
    kl_target: float = 0.6931471805599453
    """entropic_adaptive: beta solves KL(q_beta || uniform) = kl_target (ln 2)."""

    # --- evaluation ---
    eval_workers: int = 0
    """Parallel evaluations (0 = one per CPU core)."""
    eval_timeout_s: float = 10.0
    """Wall-clock limit for one program evaluation in the sandbox."""
    eval_executor: str = "local"
    """Where candidates are evaluated: local (a thread pool here) or ray (Ray tasks, each
    still sandboxed on its worker)."""

    # --- budget ---
    steps: int = 50
    """Training steps."""
    groups_per_step: int = 64
    """Start states (groups) per step."""
    group_size: int = 8
    """Actions sampled per start state."""
    seed: int = 0
    """Seed for torch, numpy and the buffer."""
    device: str = ""
    """cuda or cpu; empty picks CUDA when available."""

    def __post_init__(self) -> None:
        _check_choice("sampler", self.sampler, SAMPLERS)
        _check_choice("objective", self.objective, OBJECTIVES)
        _check_choice("action", self.action, ACTIONS)
        _check_choice("fast_sampler", self.fast_sampler, FAST_SAMPLER)
        _check_choice("eval_executor", self.eval_executor, EVAL_EXECUTORS)
        for name in ("steps", "groups_per_step", "group_size", "max_new_tokens", "lora_rank"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")

    # --- derived ---
    @property
    def rollouts_per_step(self) -> int:
        return self.groups_per_step * self.group_size

    @property
    def updates_policy(self) -> bool:
        return self.train and self.objective != "none"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        return cls().replace(**values)

    def replace(self, **overrides) -> Config:
        unknown = sorted(set(overrides) - set(field_names()))
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r}; valid keys: {', '.join(field_names())}"
            )
        return dataclasses.replace(self, **overrides)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


# Paper defaults are the dataclass defaults; presets scale the budget down.
BUDGETS: dict[str, dict] = {
    "smoke": dict(steps=2, groups_per_step=2, group_size=4, max_new_tokens=32, lora_rank=4,
                  learning_rate=1e-3),
    "small": dict(steps=8, groups_per_step=2, group_size=8, max_new_tokens=160,
                  learning_rate=1e-3),  # as the planner's small budget (planner.py)
    "medium": dict(steps=20, groups_per_step=8, group_size=8, max_new_tokens=512),
    "paper": dict(),
}


def parse_value(key: str, text: str):
    """Parse `text` into the type of config field `key` (bools accept true/false/1/0/yes/no)."""
    hints = typing.get_type_hints(Config)
    if key not in hints:
        raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(field_names())}")
    kind = hints[key]
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        return kind(text)
    except ValueError:
        raise ConfigError(f"{key} expects {kind.__name__}, got {text!r}") from None


def parse_overrides(pairs: typing.Iterable[str]) -> dict:
    """['steps=3', 'beta=4'] -> {'steps': 3, 'beta': 4.0}, with one-line errors."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = parse_value(key.strip(), value.strip())
    return out


def make_config(budget: str | None = None, **overrides) -> Config:
    """Defaults, then the budget preset, then explicit overrides."""
    if budget is not None and budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    preset = BUDGETS.get(budget or "paper", {})
    return Config().replace(**{**preset, **overrides})



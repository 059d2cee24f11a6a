"""One flat, frozen configuration for a TTT-Discover run.

Field names are the `config.json` keys, the `--set key=value` names and the CSV columns of a
sweep. Ablations of the paper are values of `reuse`, `objective` and `train`, not code paths.
Budget presets (`BUDGETS`) scale the paper's defaults down to what a machine can afford.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from harness.base.errors import UserError

REUSE_RULES = ("puct", "eps_greedy", "greedy", "none")
OBJECTIVES = ("entropic_adaptive", "entropic_const", "mean", "none")
ACTIONS = ("auto", "program", "construction")
FAST_SAMPLER = ("auto", "on", "off", "shared")
SAMPLE_DTYPE = ("auto", "model", "bfloat16")
EVAL_EXECUTORS = ("local", "ray")
REASONING = ("auto", "on", "off")

EMBEDDED_MODELS = ("smollm2", "tiny", "smollm2-shape")  # shipped or built here, offline


class ConfigError(UserError):
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

    # --- training (the released code: Adam (0.9, 0.95, 1e-8), no clipping, no KL) ---
    adam_beta1: float = 0.9
    """Adam beta1 (first-moment decay)."""
    adam_beta2: float = 0.95
    """Adam beta2 (second-moment decay)."""
    adam_eps: float = 1e-8
    """Adam epsilon."""
    max_grad_norm: float = 0.0
    """Clip the gradient's total norm to this; 0 = no clipping (the released code)."""
    train_micro_batch: int = 4
    """Rollouts per forward/backward pass of the loss (memory only; one step per batch)."""
    kl_coef: float = 0.0
    """KL penalty toward the base model, folded into per-token advantages (0 = none)."""

    # --- sampling ---
    temperature: float = 1.0
    """Sampling temperature of the policy."""
    max_new_tokens: int = 26000
    """Cap on generated tokens per action (lowered to fit the model's context at run time)."""
    prompt_max_tokens: int = 6144
    """Token budget of a prompt: over it, the loop shortens the shown parent in its middle
    (harness/loop/prompts.py); the released setup leaves about 32k - 26k tokens for it."""
    reasoning: str = "auto"
    """Chat template's reasoning mode: auto (on where the template has a switch), on, off."""
    sample_batch_size: int = 64
    """Sequences generated together (memory only)."""
    fast_sampler: str = "auto"
    """Sampling backend: on = static cache + CUDA graph (harness/loop/fast_sampler.py), shared =
    each prompt prefilled once per group, finished rows leave the batch
    (harness/loop/shared_sampler.py), off = transformers generate; auto = on for CUDA, shared
    on CPU."""
    sample_dtype: str = "auto"
    """Precision of the CPU sampler's matrix products (fast_sampler=shared): model = the
    model's own (fp32 on CPU), bfloat16 = every linear layer multiplies in bf16, the rest stays
    fp32 (issue 19: 2.2x faster linears on a CPU with native bf16); auto = bfloat16 on a CPU
    with native bf16 (AVX512-BF16 or AMX), model elsewhere. The sampler's own log-probs are
    recorded, so training's importance ratio sees the drift, as with bf16 on CUDA."""
    stop_at_answer: bool = False
    """End each action where its answer is complete (harness/env/answers.py): the list's closing
    bracket or where its numbers break off, the code block's closing fence; EOS is appended and
    nothing after it is kept.
    Off in the released configuration (actions end at EOS or the token cap); on in the
    scaled-down budgets, where a small model keeps writing prose after its answer."""

    # --- search (start-state reuse) ---
    reuse: str = "puct"
    """Start-state selection: puct, eps_greedy, greedy (best state), none (always the initial).
    Called `sampler` before issue 20; that key is still accepted (RENAMED)."""
    c_puct: float = 1.0
    """PUCT exploration constant c."""
    epsilon: float = 0.1
    """eps_greedy: probability of a uniformly random start state."""
    topk_children: int = 2
    """Children kept per parent after each step."""
    buffer_size: int = 1000
    """Buffer cap (initial states always kept)."""
    puct_divisor: int = 1
    """G in PUCT's sqrt(1 + T/G) / (1 + n/G): 1 counts rollouts (released); group_size
    counts groups (this project's earlier variant)."""
    q_ancestors: bool = False
    """True: a child's reward also raises m (behind Q) of every recorded ancestor, not only
    of its parent (a project variant; the released code updates the parent only)."""
    prompt_history: int = 5
    """Ancestors' scores shown in the prompt's score history (before -> after)."""

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
    eval_timeout_s: float = 1000.0
    """Wall-clock limit for one program evaluation in the sandbox (the released budget)."""
    atcoder_cases: int = 150
    """Generated cases per evaluation of an AtCoder env (ahc039, ahc058)."""
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
        check_choice("reuse", self.reuse, REUSE_RULES)
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("action", self.action, ACTIONS)
        check_choice("fast_sampler", self.fast_sampler, FAST_SAMPLER)
        check_choice("sample_dtype", self.sample_dtype, SAMPLE_DTYPE)
        check_choice("eval_executor", self.eval_executor, EVAL_EXECUTORS)
        check_choice("reasoning", self.reasoning, REASONING)
        if self.puct_divisor < 1 or self.prompt_history < 0:
            raise ConfigError("puct_divisor must be at least 1 and prompt_history at least 0")
        for name in ("steps", "groups_per_step", "group_size", "max_new_tokens", "lora_rank",
                     "train_micro_batch", "sample_batch_size", "atcoder_cases"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("temperature", "adam_eps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("max_grad_norm", "kl_coef"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be at least 0, got {getattr(self, name)}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    # --- derived ---
    @property
    def rollouts_per_step(self) -> int:
        return self.groups_per_step * self.group_size

    @property
    def updates_policy(self) -> bool:
        return self.train and self.objective != "none"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        return cls().replace(**values)

    def replace(self, **overrides) -> Config:
        overrides = {current_key(k): v for k, v in overrides.items()}
        unknown = sorted(set(overrides) - set(field_names()))
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r}; valid keys: {', '.join(field_names())}"
            )
        return dataclasses.replace(self, **overrides)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


# keys renamed since plans and config.json files were first written: old -> new
RENAMED = {"sampler": "reuse"}


def current_key(key: str) -> str:
    """A config key as it is named now (an old plan's `sampler` is `reuse`)."""
    return RENAMED.get(key, key)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


# The scaled-down budgets keep the evaluation settings of before the released ones became the
# defaults: a 1000 s program budget or 150 AtCoder cases would stall a CPU run.
SCALED_DOWN_EVAL = dict(eval_timeout_s=10.0, atcoder_cases=8)
# ... end actions at their answer, and train on a whole group's rollouts at once, so that its
# prompt runs forward and backward once (issue 19: the ~950-token prompt dominated a CPU step's
# training; a micro-batch only bounds memory, and short actions need little). Kept apart from
# the evaluation settings, so a plan written before them resumes as it began
# (planner._with_scaled_down_eval).
SCALED_DOWN_SAMPLING = dict(stop_at_answer=True, train_micro_batch=8)

# --- budgets: what a run and a whole experiment may spend ---
@dataclass(frozen=True)
class Budget:
    settings: dict       # config overrides of every run (steps is the most per arm and seed)
    seeds: int           # seeds per arm of an experiment unless --seeds says otherwise
    max_arms: int
    max_rollouts: int    # bound on arms x seeds x steps x rollouts per step of an experiment
    grid: int            # values in a tuning grid (3 or 5)


# small: ~2.5 s per rollout on 2 CPU cores with smollm2 since actions end at their answer
# (issue 19), so 288 rollouts (3 arms x 8 steps x 2 groups x 6) take about 12 minutes.
# `harness discover --budget` and `harness experiment --budget` read this one table.
BUDGETS: dict[str, Budget] = {
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


def default_budget(device: str) -> str:
    """The budget when none is given: small on CPU, medium on a GPU."""
    return "small" if device == "cpu" else "medium"


def parse_value(key: str, text: str):
    """Parse `text` into the type of config field `key` (bools accept true/false/1/0/yes/no)."""
    hints, key = typing.get_type_hints(Config), current_key(key)
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
        out[current_key(key.strip())] = parse_value(key.strip(), value.strip())
    return out


def make_config(budget: str | None = None, **overrides) -> Config:
    """Defaults, then the budget preset, then explicit overrides."""
    if budget is not None and budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    preset = BUDGETS[budget or "paper"].settings
    return Config().replace(**{**preset, **overrides})



"""Erdős minimum overlap: find a step function h whose overlap bound C5 is as small as possible.

Raw score: C5 (lower is better). Reward: 1 / C5. Actions:
- `construction`: the model writes 4 to 1000 non-negative numbers; the prompt states the rule
  that turns them into h (one common scale factor, values capped at 1, mean exactly 1/2:
  `scale_and_cap`), so that a small model's lists are valid far more often (91% vs 25% of
  SmolLM2-135M's lists in our trial). The stored state is the resulting h, which the strict
  verifier checks like any other.
- `program`: the model writes `run(seed, budget_s)` returning h, checked strictly; it gets its
  parent's h as the global `parent_construction`.
Initial states (the released code's `random` start): one per group, each n ~ U{40..99} values
0.5 + p_i - mean(p) with p_i ~ U(-0.4, 0.4), drawn from the run's seed; with program actions
an empty program handed that h. `initial_solutions` (the reference start for benchmarks) is
the constant 1/2 on 20 steps (C5 = 0.5).
Best known: C5 <= 0.380876, TTT-Discover (Yuksekgonul et al. 2026, arXiv 2601.16175, Table 1;
the previous bound was AlphaEvolve's 0.380924).
"""

from __future__ import annotations

import random

from envs.erdos.verifier import erdos_c5, scale_and_cap
from harness.env import Env, EvalResult


def random_start(rng: random.Random) -> list[float]:
    """The released code's random Erdős start: 40 to 99 values, 0.5 plus a zero-mean
    uniform(-0.4, 0.4) perturbation (so the mean is exactly 1/2)."""
    n = rng.randrange(40, 100)
    perturbation = [rng.uniform(-0.4, 0.4) for _ in range(n)]
    mean = sum(perturbation) / n
    return [0.5 + p - mean for p in perturbation]


class ErdosEnv(Env):
    name = "erdos"
    title = "Erdős minimum overlap (C5 upper bound)"
    objective = "C5 upper bound"
    direction = "min"
    min_len = 4
    initial_value = 0.5
    max_len = 1000
    best_known = 0.380876
    best_known_source = "TTT-Discover, 2026"
    score_name = "C5"

    def verify(self, values: list[float]) -> float:
        return erdos_c5(values)

    def decode(self, values: list[float]) -> list[float]:
        return scale_and_cap(values).tolist()

    def initial_states(self, action: str, rng: random.Random, n: int) -> list[EvalResult]:
        return [self.construction_start(random_start(rng), action) for _ in range(n)]

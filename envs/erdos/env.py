"""Erdős minimum overlap: find a step function h whose overlap bound C5 is as small as possible.

Raw score: C5 (lower is better). Reward: 1 / C5. Actions:
- `construction`: the model writes 4 to 1000 non-negative numbers; the prompt states the rule
  that turns them into h (one common scale factor, values capped at 1, mean exactly 1/2:
  `scale_and_cap`), so that a small model's lists are valid far more often (91% vs 25% of
  SmolLM2-135M's lists in our trial). The stored state is the resulting h, which the strict
  verifier checks like any other.
- `program`: the model writes `run(seed, budget_s)` returning h, checked strictly.
The initial state is the constant function 1/2 on 20 steps (C5 = 0.5).
"""

from __future__ import annotations

from envs.erdos.verifier import erdos_c5, scale_and_cap
from harness.env import Env


class ErdosEnv(Env):
    name = "erdos"
    title = "Erdős minimum overlap (C5 upper bound)"
    objective = "C5 upper bound"
    direction = "min"
    min_len = 4
    initial_value = 0.5
    max_len = 1000

    def verify(self, values: list[float]) -> float:
        return erdos_c5(values)

    def decode(self, values: list[float]) -> list[float]:
        return scale_and_cap(values).tolist()

"""Second autocorrelation inequality: find a non-negative sequence whose C2 bound is largest.

Raw score: ||g||_2^2 / (||g||_1 ||g||_inf) for g = a * a read as a piecewise linear function
(see `verifier.py`), a lower bound on C2 (higher is better). Reward: the raw score.
Actions: `construction` (the model writes the list; any non-negative list with a positive sum
is valid) and `program` (`run(seed, budget_s)` returning the list). Lengths up to 100,000 are
accepted for published constructions; prompts show long states downsampled. The initial state
is the constant sequence of 20 ones (raw about 0.67).
"""

from __future__ import annotations

from envs.ac2.verifier import ac2_bound
from harness.env import Env


class AC2Env(Env):
    name = "ac2"
    title = "Second autocorrelation inequality (C2 lower bound)"
    objective = "C2 lower bound"
    direction = "max"
    min_len = 1
    initial_value = 1.0
    max_len = 100_000

    def verify(self, values: list[float]) -> float:
        return ac2_bound(values)

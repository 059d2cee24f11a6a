"""`AutocorrelationEnv`: what the two autocorrelation inequality envs (ac1, ac2) share.

Initial states follow the released code's `random` start for AC: a constant sequence of
random length 1000 to 7999 with a random value, drawn anew whenever an initial state is
picked (`redraws_initial`), with a starter program. Here every draw comes from the run's seed
(the buffer's generator, restored on resume), where the released code draws unseeded.
"""

from __future__ import annotations

import random

from harness.env import Env, EvalResult

# The starter handed to program actions: it returns its parent's construction unchanged.
STARTER_PROGRAM = '''def run(seed: int, budget_s: float) -> list[float]:
    """Start from the parent's construction (the global `parent_construction`)."""
    return list(parent_construction or [1.0] * 20)
'''


def constant_start(rng: random.Random) -> list[float]:
    """A constant sequence: value uniform in [0, 1), length uniform in 1000..7999."""
    value = rng.random()
    return [value] * rng.randrange(1000, 8000)


class AutocorrelationEnv(Env):
    min_len = 1
    initial_value = 1.0
    max_len = 100_000
    redraws_initial = True

    def initial_states(self, action: str, rng: random.Random, n: int) -> list[EvalResult]:
        return [self.redraw_initial(action, rng) for _ in range(n)]

    def redraw_initial(self, action: str, rng: random.Random) -> EvalResult:
        return self.construction_start(constant_start(rng), action, STARTER_PROGRAM)

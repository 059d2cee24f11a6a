"""First autocorrelation inequality: find a non-negative sequence whose C1 bound is smallest.

Raw score: 2n max(a * a) / (sum a)^2, an upper bound on C1 (lower is better). Reward: 1 / raw.
Actions: `construction` (the model writes the list; any non-negative list with a positive sum
is valid, so no decoding rule is needed) and `program` (`run(seed, budget_s)` returning the
list). Lengths up to 100,000 are accepted so that published constructions (30,000 to 50,000
steps) can be scored; prompts show long states downsampled. The initial state is the constant
sequence of 20 ones (raw 2).
"""

from __future__ import annotations

from envs.ac1.verifier import ac1_bound
from harness.env import Env


class AC1Env(Env):
    name = "ac1"
    title = "First autocorrelation inequality (C1 upper bound)"
    objective = "C1 upper bound"
    direction = "min"
    min_len = 1
    initial_value = 1.0
    max_len = 100_000

    def verify(self, values: list[float]) -> float:
        return ac1_bound(values)

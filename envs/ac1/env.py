"""First autocorrelation inequality: find a non-negative sequence whose C1 bound is smallest.

Raw score: 2n max(a * a) / (sum a)^2, an upper bound on C1 (lower is better). Reward: 1 / raw.
Actions: `construction` (the model writes the list; any non-negative list with a positive sum
is valid, so no decoding rule is needed) and `program` (`run(seed, budget_s)` returning the
list, given its parent's list as `parent_construction`). Lengths up to 100,000 are accepted so
that published constructions (30,000 to 50,000 steps) can be scored; prompts show long states
downsampled. Initial states: see `envs.autocorrelation` (constant sequences score exactly 2).
`initial_solutions` (the reference start) is the constant sequence of 20 ones.
Best known: C1 <= 1.50287, TTT-Discover (Yuksekgonul et al. 2026, arXiv 2601.16175; a
30,000-step function), ahead of ThetaEvolve's 1.50314 and AlphaEvolve's 1.50317.
"""

from __future__ import annotations

from envs.ac1.verifier import ac1_bound
from envs.autocorrelation import AutocorrelationEnv


class AC1Env(AutocorrelationEnv):
    name = "ac1"
    title = "First autocorrelation inequality (C1 upper bound)"
    objective = "C1 upper bound"
    direction = "min"
    best_known = 1.50287
    best_known_source = "TTT-Discover, 2026"
    score_name = "C1"

    def verify(self, values: list[float]) -> float:
        return ac1_bound(values)

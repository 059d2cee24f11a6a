"""Second autocorrelation inequality: find a non-negative sequence whose C2 bound is largest.

Raw score: ||g||_2^2 / (||g||_1 ||g||_inf) for g = a * a read as a piecewise linear function
(see `verifier.py`), a lower bound on C2 (higher is better). Reward: the raw score.
Actions: `construction` (the model writes the list; any non-negative list with a positive sum
is valid) and `program` (`run(seed, budget_s)` returning the list, given its parent's list as
`parent_construction`). Lengths up to 100,000 are accepted for published constructions;
prompts show long states downsampled. Initial states: see `envs.autocorrelation` (constant
sequences score about 0.67). `initial_solutions` is the constant sequence of 20 ones.
Best known: C2 >= 0.9610, AlphaEvolve v2 (as reported in
arXiv 2601.16175, Table 2, where TTT-Discover reaches 0.9591).
"""

from __future__ import annotations

from envs.ac2.verifier import ac2_bound
from envs.autocorrelation import AutocorrelationEnv


class AC2Env(AutocorrelationEnv):
    name = "ac2"
    title = "Second autocorrelation inequality (C2 lower bound)"
    objective = "C2 lower bound"
    direction = "max"
    best_known = 0.961
    best_known_source = "AlphaEvolve v2, 2025"
    score_name = "C2"

    def verify(self, values: list[float]) -> float:
        return ac2_bound(values)

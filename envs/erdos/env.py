"""Erdős minimum overlap: find a step function h whose overlap bound C5 is as small as possible.

A `Problem` (harness/env/problem.py) with its own prompts. Raw score: C5 (lower is better);
reward 1 / C5. A construction is 4 to 1000 numbers; the prompt states the rule that turns
them into h (`decode`: one common scale, values capped at 1, mean exactly 1/2), so a small
model's lists are valid far more often (91% vs 25% of SmolLM2-135M's in our trial); the stored
h is checked strictly. The prompt shows the parent to 2 significant digits (`prompt_digits`):
the model copies the digits it is shown (7.75 -> 5.75 tokens per number of a valid answer on
the main job, seed 0; tokens per action 67.4 -> 52.4 there, while on seeds 1-2 of its baseline
arm the change stayed within the seed-to-seed swing). A program returns h and gets its
parent's as `parent_construction`.
Starts (the released code's `random` start): per group, n ~ U{40..99} values 0.5 + p_i -
mean(p), p_i ~ U(-0.4, 0.4), from the run's seed. `initial_solution` (the reference start of
benchmarks) is 1/2 on 20 steps (C5 = 0.5).
Best known: C5 <= 0.380876, TTT-Discover (Yuksekgonul et al. 2026, arXiv 2601.16175, Table 1;
the previous bound was AlphaEvolve's 0.380924).
"""

from __future__ import annotations

import random
from pathlib import Path

from envs.erdos.verifier import erdos_c5, scale_and_cap
from harness.env.problem import Problem


def random_start(rng: random.Random) -> list[float]:
    """The released code's random Erdős start: 40 to 99 values, 0.5 plus a zero-mean
    uniform(-0.4, 0.4) perturbation (so the mean is exactly 1/2)."""
    n = rng.randrange(40, 100)
    perturbation = [rng.uniform(-0.4, 0.4) for _ in range(n)]
    mean = sum(perturbation) / n
    return [0.5 + p - mean for p in perturbation]


class Erdos(Problem):
    name = "erdos"
    title = "Erdős minimum overlap (C5 upper bound)"
    objective = "C5 upper bound"
    direction = "min"
    statement = "Find a step function h on [0, 2] whose overlap bound C5 is smallest."
    initial_solution = [0.5] * 20
    best_known, best_known_source = 0.380876, "TTT-Discover, 2026"
    score_name = "C5"
    min_length, max_length = 4, 1000
    prompt_digits = 2  # the model copies the shown digits: 6 tokens per number, not 8
    file_keys = ("sequence", "h_values")
    prompts = Path(__file__).parent  # prompt_construction.j2 states the decoding rule

    def score(self, solution: list[float]) -> float:
        return erdos_c5(solution)

    def decode(self, values: list[float]) -> list[float]:
        return scale_and_cap(values).tolist()

    def starts(self, rng: random.Random, n: int) -> list[list[float]]:
        return [random_start(rng) for _ in range(n)]

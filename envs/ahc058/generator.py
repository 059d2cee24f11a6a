"""Case generator for ahc058, written from the contest's input-generation rules.

N = 10 machine ids, L = 4 levels, T = 500 turns, K = 1 apple. A_0 = 1 and the other A_j are
round(10^U(0, 2)), then A is sorted; C_{0,0} = 1 and every other cost is
round(A_j * 500^i * 10^U(0, 2)) with the sorted A. Seeded and deterministic.
"""

from __future__ import annotations

import math

import numpy as np

N, L, T, K = 10, 4, 500, 1


def round_half_up(x: float) -> int:
    """Rounding as the contest's tools do (halves away from zero; x >= 0 here)."""
    return math.floor(x + 0.5)


def generate_case(seed: int) -> str:
    """The input text of case `seed`: `N L T K`, the A line, then L lines of costs."""
    rng = np.random.default_rng(seed)
    a = sorted([1] + [round_half_up(10 ** rng.uniform(0, 2)) for _ in range(N - 1)])
    costs = [[1 if (i, j) == (0, 0) else round_half_up(a[j] * 500**i * 10 ** rng.uniform(0, 2))
              for j in range(N)] for i in range(L)]
    lines = [f"{N} {L} {T} {K}", " ".join(map(str, a))]
    lines += [" ".join(map(str, row)) for row in costs]
    return "\n".join(lines) + "\n"

"""Case generator for ahc039, written from the contest's input-generation rules.

N = 5000 mackerels, then N sardines, each drawn from their own mixture of 10..25 Gaussian
clusters (weight U(0, 1), centre uniform on [20000, 80000]^2 in integers, standard deviation
an integer in [1000, 5000]); a point outside [0, 10^5]^2 or equal to any earlier point (of
either kind) is drawn again. Seeded and deterministic: the same seed gives the same text.
"""

from __future__ import annotations

import numpy as np

N = 5000
COORD_MAX = 100_000


def _draw_points(rng: np.random.Generator, n: int, taken: set[int]) -> np.ndarray:
    """n new distinct points from a fresh cluster mixture; `taken` holds x * 2^20 + y keys."""
    n_clusters = int(rng.integers(10, 26))
    weights = rng.random(n_clusters)
    centres = rng.integers(20_000, 80_001, size=(n_clusters, 2))
    sigmas = rng.integers(1000, 5001, size=n_clusters)
    points = []
    while len(points) < n:
        batch = 2 * (n - len(points)) + 16  # rejected draws are re-drawn in the next batch
        cluster = rng.choice(n_clusters, size=batch, p=weights / weights.sum())
        xy = np.rint(rng.normal(centres[cluster], sigmas[cluster, None])).astype(np.int64)
        for x, y in xy[np.all((xy >= 0) & (xy <= COORD_MAX), axis=1)].tolist():
            key = (x << 20) | y
            if key not in taken:
                taken.add(key)
                points.append((x, y))
                if len(points) == n:
                    break
    return np.array(points, dtype=np.int64)


def generate_case(seed: int) -> str:
    """The input text of case `seed`: `N`, then 2N lines `x y` (mackerels first)."""
    rng = np.random.default_rng(seed)
    taken: set[int] = set()
    mackerels = _draw_points(rng, N, taken)
    sardines = _draw_points(rng, N, taken)
    lines = [str(N)] + [f"{x} {y}" for x, y in np.concatenate([mackerels, sardines]).tolist()]
    return "\n".join(lines) + "\n"

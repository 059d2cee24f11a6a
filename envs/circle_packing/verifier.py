"""Exact verifier for circle packing in the unit square (pure: numbers in, number out).

A construction is n circles (x, y, r). It is valid when every radius is positive, every
circle lies inside [0, 1]^2 (x - r >= 0, x + r <= 1, same for y) and no two circles overlap
(centre distance >= r_i + r_j); the score is the sum of the radii, higher is better.
Known records: about 2.6359 for 26 circles and 2.9396 for 32.

Every constraint is checked with an absolute slack of TOLERANCE = 1e-9. Published constructions
come from floating-point optimisers whose touching circles and walls are tight only up to
round-off (1e-16 to 1e-12 in unit-square coordinates), and the JSON copies round again; an
exact check would reject them. The slack cannot be exploited measurably: shrinking every radius
of a packing that is valid with slack t by t gives a packing that is valid exactly, so the slack
is worth at most n * t (3.2e-8 for 32 circles), far below the 1e-6 digits at which results are
reported and compared.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-9


def check_packing(circles, n_circles: int) -> np.ndarray:
    """The circles as an (n, 3) float64 array if they form a valid packing of `n_circles`
    circles; ValueError says what is wrong (the first problem found, with circle indices)."""
    try:
        c_N3 = np.asarray(circles, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("circles must be a list of [x, y, r] triples of numbers") from None
    if c_N3.size == 0:
        c_N3 = c_N3.reshape(0, 3)  # an empty list is a wrong count, not a wrong shape
    if c_N3.ndim != 2 or c_N3.shape[1] != 3:
        raise ValueError(f"circles must be a list of [x, y, r] triples; got shape {c_N3.shape}")
    if c_N3.shape[0] != n_circles:
        raise ValueError(f"expected {n_circles} circles, got {c_N3.shape[0]}")
    if not np.all(np.isfinite(c_N3)):
        raise ValueError("the circles contain NaN or infinity")
    x_N, y_N, r_N = c_N3.T
    if r_N.min() <= 0:
        i = int(np.argmin(r_N))
        raise ValueError(f"circle {i} has radius {r_N[i]:.4g}; radii must be positive")
    # how far each circle sticks out past each wall (left, right, bottom, top)
    outside_N4 = np.stack([r_N - x_N, x_N + r_N - 1, r_N - y_N, y_N + r_N - 1], axis=1)
    if outside_N4.max() > TOLERANCE:
        i = int(np.argmax(outside_N4.max(axis=1)))
        raise ValueError(f"circle {i} sticks out of the unit square by {outside_N4.max():.4g}")
    dist_NN = np.hypot(x_N[:, None] - x_N[None, :], y_N[:, None] - y_N[None, :])
    overlap_NN = r_N[:, None] + r_N[None, :] - dist_NN
    np.fill_diagonal(overlap_NN, -np.inf)
    if overlap_NN.max() > TOLERANCE:
        i, j = sorted(np.unravel_index(int(np.argmax(overlap_NN)), overlap_NN.shape))
        raise ValueError(f"circles {i} and {j} overlap by {overlap_NN.max():.4g}")
    return c_N3


def sum_of_radii(circles, n_circles: int) -> float:
    """The score of a valid packing of `n_circles` circles: the sum of the radii."""
    return float(check_packing(circles, n_circles)[:, 2].sum())

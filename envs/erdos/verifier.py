"""Exact verifier for the Erdős minimum overlap problem (pure: numbers in, number out).

A construction is a step function h on [0, 2] given by n equal-width steps. It is valid when
every value lies in [0, 1] and, after rescaling to mean 1/2 (so that the integral of h over
[0, 2] is 1, i.e. sum(h) = n/2), every value is still at most 1. The bound it certifies is
    C5 = max_k sum_j h_j (1 - h_{j+k}) * (2/n)    (the maximum of the correlation of h, 1-h)
and lower is better. The construction published with TTT-Discover reaches 0.380875.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-9  # rescaling is floating point: a value of 1 + 1e-12 is still 1


def normalise(h) -> np.ndarray:
    """Check a step function and rescale it to sum n/2; ValueError says what is wrong."""
    h_N = np.asarray(h, dtype=np.float64)
    if h_N.ndim != 1 or h_N.size == 0:
        raise ValueError("the step function must be a non-empty flat list of numbers")
    if not np.all(np.isfinite(h_N)):
        raise ValueError("the step function contains NaN or infinity")
    if h_N.min() < 0 or h_N.max() > 1:
        raise ValueError(f"values must lie in [0, 1]; got min {h_N.min():.4g}, "
                         f"max {h_N.max():.4g}")
    total = h_N.sum()
    if total <= 0:
        raise ValueError("the step function is zero everywhere")
    h_N = h_N * (h_N.size / 2.0) / total
    if h_N.max() > 1 + TOLERANCE:
        raise ValueError(f"after rescaling to mean 1/2 the largest value is {h_N.max():.4g} "
                         "> 1 (the mean of the values must be at least half their maximum)")
    return h_N


def erdos_c5(h) -> float:
    """The upper bound C5 certified by step function h (lower is better)."""
    h_N = normalise(h)
    n = h_N.size
    return float(np.max(np.correlate(h_N, 1.0 - h_N, mode="full")) * 2.0 / n)


def scale_and_cap(values) -> np.ndarray:
    """The construction action's stated rule: any list of non-negative numbers becomes a valid h.

    h = min(1, s * values) with the one factor s > 0 that makes the mean of h exactly 1/2
    (found by bisection; the mean grows monotonically with s). Needs at least half of the
    values to be positive, otherwise no factor reaches mean 1/2.
    """
    f_N = np.asarray(values, dtype=np.float64)
    if f_N.ndim != 1 or f_N.size == 0:
        raise ValueError("the step function must be a non-empty flat list of numbers")
    if not np.all(np.isfinite(f_N)):
        raise ValueError("the step function contains NaN or infinity")
    if f_N.min() < 0:
        raise ValueError(f"values must be non-negative; got {f_N.min():.4g}")
    if np.count_nonzero(f_N) * 2 < f_N.size:
        raise ValueError("fewer than half of the values are positive: the mean cannot reach 1/2")
    target = 0.5 * f_N.size
    lo, hi = 0.0, 0.5 / f_N.mean()
    while np.minimum(1.0, hi * f_N).sum() < target:
        hi *= 2.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.minimum(1.0, mid * f_N).sum() < target else (lo, mid)
    return np.minimum(1.0, hi * f_N)

"""Exact verifier for the second autocorrelation inequality (pure: numbers in, number out).

A construction is a non-negative sequence a_0..a_{n-1}. Its autoconvolution g = a * a has
N = 2n-1 values, read as a piecewise linear function on [-1/2, 1/2] through the points
y = [0, g_0, ..., g_{N-1}, 0] spaced h = 1/(N+1) apart. The certified lower bound is
    C2 >= ||g||_2^2 / (||g||_1 ||g||_inf)
with ||g||_2^2 = sum over the N+1 intervals of (h/3)(y_i^2 + y_i y_{i+1} + y_{i+1}^2) (exact for
the piecewise linear function), ||g||_1 = sum(g) / (N+1) and ||g||_inf = max(g). Higher is
better (a constant sequence gives about 2/3; published constructions reach about 0.96).

g is computed by FFT (`autoconvolution`), which clips at 0 only the tiny negative round-off
(about 1e-16 of max g) where the exact g is 0: for non-negative a the exact g is never negative.
"""

from __future__ import annotations

import numpy as np

from envs.ac1.verifier import autoconvolution, check_sequence


def ratio_of_autoconvolution(g) -> float:
    """||g||_2^2 / (||g||_1 ||g||_inf) for a non-negative g of length N with g(+-1/2) = 0."""
    g_N = np.asarray(g, dtype=np.float64)
    y = np.concatenate(([0.0], g_N, [0.0]))
    h = 1.0 / (g_N.size + 1)
    l2_squared = (h / 3.0) * np.sum(y[:-1] ** 2 + y[:-1] * y[1:] + y[1:] ** 2)
    l1 = np.sum(np.abs(g_N)) / (g_N.size + 1)
    return float(l2_squared / (l1 * np.max(np.abs(g_N))))


def ac2_bound(a) -> float:
    """The lower bound on C2 certified by sequence a (higher is better)."""
    return ratio_of_autoconvolution(autoconvolution(check_sequence(a)))

"""Exact verifier for the first autocorrelation inequality (pure: numbers in, number out).

A construction is a non-negative sequence a_0..a_{n-1}: the heights of a step function f with
n equal steps. Its autoconvolution a * a (length 2n-1) certifies the upper bound
    C1 <= 2n * max(a * a) / (sum a)^2
and lower is better (a constant sequence gives 2; published constructions reach about 1.50
with 30,000 to 50,000 steps). The convolution is computed by FFT (O(n log n)); the tests bound
its error against `np.convolve`.
"""

from __future__ import annotations

import numpy as np


def check_sequence(a) -> np.ndarray:
    """A valid sequence as float64, scaled to max 1 (every score here is scale-invariant, and
    the scaling keeps a * a from overflowing or underflowing); ValueError says what is wrong."""
    try:
        a_N = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("the sequence must be a flat list of numbers") from None
    if a_N.ndim != 1 or a_N.size == 0:
        raise ValueError("the sequence must be a non-empty flat list of numbers")
    if not np.all(np.isfinite(a_N)):
        raise ValueError("the sequence contains NaN or infinity")
    if a_N.min() < 0:
        raise ValueError(f"values must be non-negative; got {a_N.min():.4g}")
    if a_N.max() == 0:
        raise ValueError("the sequence is zero everywhere (its sum must be positive)")
    return a_N / a_N.max()


def fast_len(m: int) -> int:
    """The smallest 5-smooth number (2^i 3^j 5^k) >= m: FFT lengths numpy transforms fastest."""
    best = 1 << max(m - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35 << max(-(-m // p35) - 1, 0).bit_length()  # times the power of 2 reaching m
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def autoconvolution(a_N: np.ndarray) -> np.ndarray:
    """a * a (length 2n-1) by zero-padded real FFT. For non-negative a the exact result is
    non-negative, so the tiny negative values FFT round-off leaves where it is 0 (around
    1e-16 of the maximum) are clipped to 0; nothing else is changed."""
    m = 2 * a_N.size - 1
    length = fast_len(m)
    spectrum = np.fft.rfft(a_N, length)
    g_M = np.fft.irfft(spectrum * spectrum, length)[:m]
    return np.maximum(g_M, 0.0)


def ac1_bound(a) -> float:
    """The upper bound on C1 certified by a: 2n max(a * a) / (sum a)^2 (lower is better)."""
    a_N = check_sequence(a)
    return float(2 * a_N.size * autoconvolution(a_N).max() / a_N.sum() ** 2)

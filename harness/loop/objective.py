"""Advantages for the policy-gradient step: the entropic objective of TTT-Discover and baselines.

The paper (arXiv 2601.16175, Sec. 3) optimises for the *best* reward, not the mean: weights
grow exponentially with reward, exp(beta * r), so the update chases the top of each group.
beta is chosen per group so that the weighted distribution keeps a fixed KL from uniform.
"""

from __future__ import annotations

import math

import numpy as np

BETA_CAP = 1e6


def entropic_advantages(rewards, beta: float) -> np.ndarray:
    """Leave-one-out entropic advantages for one group (paper Sec. 3.2).

    e_i = exp(beta (r_i - max_j r_j)),  Z_i = (sum_j e_j - e_i) / (K - 1),
    A_i = e_i / (Z_i + 1e-12) - 1.
    Subtracting the max keeps exp() finite for any beta; it cancels in the ratio.
    """
    rewards_G = np.asarray(rewards, dtype=np.float64)
    k = rewards_G.size
    if k < 2:
        return np.zeros(k)
    e_G = np.exp(beta * (rewards_G - rewards_G.max()))
    z_G = (e_G.sum() - e_G) / (k - 1)
    return e_G / (z_G + 1e-12) - 1.0


def kl_from_uniform(rewards, beta: float) -> float:
    """KL(q_beta || uniform) for q_beta proportional to exp(beta r) over the group."""
    rewards_G = np.asarray(rewards, dtype=np.float64)
    logits_G = beta * (rewards_G - rewards_G.max())
    log_q_G = logits_G - np.log(np.exp(logits_G).sum())
    q_G = np.exp(log_q_G)
    return float(np.sum(q_G * (log_q_G + math.log(rewards_G.size))))


def adaptive_beta(rewards, kl_target: float = math.log(2)) -> float:
    """The beta at which KL(q_beta || uniform) = kl_target (paper Sec. 3.2, adaptive beta).

    KL grows monotonically with beta, so: double an upper bound from 1 until it overshoots
    (capped at 1e6), then bisect 60 times. Groups of fewer than 2 rewards, or where even the
    cap cannot reach the target (all rewards equal, or the target exceeds log K), get the
    bound reached (0 when all rewards are equal).
    """
    rewards_G = np.asarray(rewards, dtype=np.float64)
    if rewards_G.size < 2 or np.ptp(rewards_G) == 0:
        return 0.0
    hi = 1.0
    while kl_from_uniform(rewards_G, hi) < kl_target and hi < BETA_CAP:
        hi = min(hi * 2.0, BETA_CAP)
    lo = 0.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if kl_from_uniform(rewards_G, mid) < kl_target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mean_advantages(rewards) -> np.ndarray:
    """The 'no entropic objective' baseline: A_i = r_i - mean(r)."""
    rewards_G = np.asarray(rewards, dtype=np.float64)
    return rewards_G - rewards_G.mean() if rewards_G.size else rewards_G


def group_advantages(rewards, objective: str, beta: float = 2.0,
                     kl_target: float = math.log(2)) -> tuple[np.ndarray, float]:
    """Advantages for one group under the configured objective, and the beta used (0 if none)."""
    if objective == "entropic_adaptive":
        b = adaptive_beta(rewards, kl_target)
        return entropic_advantages(rewards, b), b
    if objective == "entropic_const":
        return entropic_advantages(rewards, beta), beta
    if objective == "mean":
        return mean_advantages(rewards), 0.0
    if objective == "none":
        return np.zeros(len(rewards)), 0.0
    raise ValueError(f"unknown objective {objective!r}")

"""The entropic objective and adaptive beta, against hand-computed cases and naive loops."""

import math

import numpy as np
import pytest

from harness.loop.objective import (
    adaptive_beta,
    entropic_advantages,
    group_advantages,
    kl_from_uniform,
    mean_advantages,
)


def naive_entropic(rewards, beta):
    k = len(rewards)
    m = max(rewards)
    e = [math.exp(beta * (r - m)) for r in rewards]
    out = []
    for i in range(k):
        z = sum(e[j] for j in range(k) if j != i) / (k - 1)
        out.append(e[i] / (z + 1e-12) - 1)
    return out


def test_entropic_advantages_match_a_naive_loop():
    rng = np.random.default_rng(0)
    for _ in range(20):
        rewards = rng.normal(size=int(rng.integers(2, 10))).tolist()
        beta = float(rng.uniform(0.1, 10))
        assert np.allclose(entropic_advantages(rewards, beta), naive_entropic(rewards, beta))


def test_entropic_advantages_of_a_hand_computed_pair():
    # r = (0, 1), beta = ln 3: e = (1/3, 1); A_0 = (1/3)/1 - 1, A_1 = 1/(1/3) - 1
    adv = entropic_advantages([0.0, 1.0], math.log(3))
    assert adv == pytest.approx([-2 / 3, 2.0])


def test_entropic_advantages_are_zero_for_equal_rewards_and_singletons():
    assert np.allclose(entropic_advantages([0.3, 0.3, 0.3], 5.0), 0.0)
    assert entropic_advantages([1.0], 2.0).tolist() == [0.0]


def test_entropic_advantages_stay_finite_at_huge_beta():
    adv = entropic_advantages([0.0, 1.0, 2.0], 1e6)
    assert np.all(np.isfinite(adv)) and adv[2] > 0 and adv[0] < 0


def test_adaptive_beta_reaches_the_kl_target():
    rng = np.random.default_rng(1)
    for _ in range(10):
        rewards = rng.uniform(size=8)
        beta = adaptive_beta(rewards)
        assert kl_from_uniform(rewards, beta) == pytest.approx(math.log(2), rel=1e-6)


def test_adaptive_beta_is_zero_for_tiny_or_flat_groups():
    assert adaptive_beta([0.5]) == 0.0
    assert adaptive_beta([0.2, 0.2, 0.2]) == 0.0


def test_adaptive_beta_for_two_rewards_makes_the_group_one_hot():
    # two rewards: KL <= ln 2, reached only as beta -> infinity (in floats, from beta ~ 40)
    beta = adaptive_beta([0.0, 1.0])
    assert beta > 30
    assert kl_from_uniform([0.0, 1.0], beta) == pytest.approx(math.log(2), abs=1e-12)


def test_adaptive_beta_scales_inversely_with_reward_scale():
    rewards = np.array([0.1, 0.4, 0.5, 0.9])
    assert adaptive_beta(rewards * 10) == pytest.approx(adaptive_beta(rewards) / 10, rel=1e-6)


def test_kl_from_uniform_by_hand():
    # beta = ln 3 on (0, 1): q = (1/4, 3/4); KL = sum q log(2q)
    q = np.array([0.25, 0.75])
    expected = float(np.sum(q * np.log(2 * q)))
    assert kl_from_uniform([0.0, 1.0], math.log(3)) == pytest.approx(expected)


def test_mean_objective_centres_rewards():
    assert mean_advantages([1.0, 2.0, 3.0]).tolist() == [-1.0, 0.0, 1.0]


def test_group_advantages_dispatch_on_the_objective():
    rewards = [0.1, 0.5, 0.2]
    adv, beta = group_advantages(rewards, "entropic_const", beta=2.0)
    assert beta == 2.0 and np.allclose(adv, entropic_advantages(rewards, 2.0))
    adv, beta = group_advantages(rewards, "entropic_adaptive")
    assert beta == pytest.approx(adaptive_beta(rewards))
    assert np.allclose(group_advantages(rewards, "none")[0], 0.0)
    with pytest.raises(ValueError):
        group_advantages(rewards, "bogus")

"""PUCT scoring and the buffer's bookkeeping, fact by fact as the released code does it
(issue 17 facts 1-4; DESIGN.md section 4)."""

import math
import random

import pytest

from harness.loop.buffer import Buffer, puct_score, rank_prior


def test_puct_score_by_hand():
    # q + c * scale * P * sqrt(1 + T/G) / (1 + n/G)
    expected = 0.5 + 2.0 * 0.1 * 0.25 * math.sqrt(1 + 16 / 8) / (1 + 4 / 8)
    assert puct_score(0.5, 0.25, 4, 16, 8, 0.1, c=2.0) == pytest.approx(expected)


def test_rank_prior_gives_the_best_n_and_the_last_one():
    prior = rank_prior([0.1, 0.9, 0.5])
    assert prior == pytest.approx([1 / 6, 3 / 6, 2 / 6])


def make_buffer(**kw) -> Buffer:
    buf = Buffer(**kw)
    buf.add_initial("init", 1.0, 1.0)
    return buf


def rollout(buf: Buffer, parent: int, name: str, reward: float, valid: bool = True,
            step: int = 0) -> int | None:
    return buf.record_rollout(parent, valid, name, reward if valid else None,
                              reward if valid else 0.0, step)


# --- fact 1: visits count rollouts, for the parent and every recorded ancestor ---
def test_each_rollout_adds_one_visit_to_the_parent_its_ancestors_and_T():
    buf = make_buffer()
    a = rollout(buf, 0, "a", 2.0)
    b = rollout(buf, a, "b", 3.0)
    rollout(buf, b, "c", 4.0)
    rollout(buf, b, "bad", 0.0, valid=False)
    visits = {i: buf.states[i].visits for i in (0, a, b)}
    assert visits == {0: 4, a: 3, b: 2}
    assert buf.total_expansions == 4


def test_an_invalid_rollout_adds_visits_and_nothing_else():
    buf = make_buffer()
    before = buf.to_dict()["states"]
    assert rollout(buf, 0, "bad", 0.0, valid=False) is None
    after = buf.to_dict()["states"]
    assert len(after) == 1 and after[0]["visits"] == 1 and after[0]["best_reachable"] is None
    assert {k: v for k, v in after[0].items() if k != "visits"} == \
        {k: v for k, v in before[0].items() if k != "visits"}


# --- fact 2: m is the best valid child of the direct parent; Q = R until there is one ---
def test_an_all_invalid_group_leaves_the_parents_q_at_its_own_reward():
    buf = make_buffer()
    for _ in range(8):
        rollout(buf, 0, "bad", 0.0, valid=False)
    state = buf.states[0]
    assert state.visits == 8 and buf.q_value(state) == state.reward == 1.0


def test_q_is_the_best_valid_child_and_only_the_direct_parent_gets_it():
    buf = make_buffer()
    a = rollout(buf, 0, "a", 2.0)
    rollout(buf, a, "a1", 0.5)
    rollout(buf, a, "a2", 7.0)
    rollout(buf, a, "bad", 0.0, valid=False)
    assert buf.q_value(buf.states[a]) == 7.0  # the max, not the mean (3.75)
    assert buf.q_value(buf.states[0]) == 2.0  # the root saw only its own child


def test_q_below_the_parents_own_reward_is_kept_as_the_released_code_does():
    buf = make_buffer()
    rollout(buf, 0, "worse", 0.25)
    assert buf.q_value(buf.states[0]) == 0.25


def test_q_ancestors_variant_pushes_a_reward_to_every_recorded_ancestor():
    buf = make_buffer(q_ancestors=True)
    a = rollout(buf, 0, "a", 2.0)
    rollout(buf, a, "a1", 9.0)
    assert buf.q_value(buf.states[0]) == 9.0


# --- fact 3: the score follows sqrt(1 + T) / (1 + n) in rollouts ---
def test_the_exploration_bonus_of_a_fresh_state_follows_sqrt_1_plus_T_over_1_plus_n():
    buf = make_buffer()
    a = rollout(buf, 0, "a", 2.0)
    b = rollout(buf, 0, "b", 4.0)
    for _ in range(5):
        rollout(buf, a, "bad", 0.0, valid=False)
    scores = buf.puct_scores()
    T, scale = 7, 4.0 - 2.0
    prior = dict(zip([0, a, b], rank_prior([1.0, 2.0, 4.0]), strict=True))
    assert scores[b] == pytest.approx(4.0 + scale * prior[b] * math.sqrt(1 + T) / (1 + 0))
    assert scores[a] == pytest.approx(2.0 + scale * prior[a] * math.sqrt(1 + T) / (1 + 5))
    assert scores[0] == pytest.approx(4.0 + scale * prior[0] * math.sqrt(1 + T) / (1 + 7))


def test_a_group_divisor_is_a_named_variant():
    plain, grouped = make_buffer(), make_buffer(puct_divisor=8)
    for buf in (plain, grouped):
        rollout(buf, 0, "a", 2.0)
        rollout(buf, 0, "b", 4.0)
    bonus = {k: b.puct_scores()[0] - b.q_value(b.states[0]) for k, b in
             (("plain", plain), ("grouped", grouped))}
    # scale 4 - 2, the root's prior 1/6 (last of three), T = n = 2 rollouts
    assert bonus["plain"] == pytest.approx(2.0 / 6 * math.sqrt(1 + 2) / (1 + 2))
    assert bonus["grouped"] == pytest.approx(2.0 / 6 * math.sqrt(1 + 2 / 8) / (1 + 2 / 8))


# --- fact 4: every valid new child joins; top-k per parent across the buffer per step ---
def test_every_valid_non_duplicate_child_joins_when_scored():
    buf = make_buffer()
    ids = [rollout(buf, 0, name, r) for name, r in
           [("x", 3.0), ("y", 2.0), ("z", 1.0), ("init", 9.0), ("x", 3.0)]]
    assert ids[3] is None and ids[4] is None  # duplicates of the initial state and of x
    assert sorted(buf.states[i].solution for i in ids[:3]) == ["x", "y", "z"]


def test_after_three_steps_each_parent_keeps_at_most_two_children():
    buf = make_buffer(topk_children=2)
    rng = random.Random(0)
    for step in range(3):
        for parent in [s.id for s in buf.select("puct", 3)]:
            for k in range(4):
                reward = rng.random()
                rollout(buf, parent, f"s{step}-{parent}-{k}-{reward}", reward, step=step)
        buf.end_step()
        children: dict[int, list[float]] = {}
        for s in buf.states.values():
            if not s.is_initial:
                children.setdefault(s.parent_id, []).append(s.reward)
        assert children and max(len(c) for c in children.values()) <= 2


def test_top_k_is_over_the_whole_buffer_not_one_group():
    buf = make_buffer(topk_children=2)
    rollout(buf, 0, "old", 5.0, step=0)
    buf.end_step()
    for name, r in [("a", 1.0), ("b", 6.0), ("c", 2.0)]:  # a later group from the same parent
        rollout(buf, 0, name, r, step=1)
    buf.end_step()
    assert sorted(s.solution for s in buf.states.values() if not s.is_initial) == ["b", "old"]


def test_the_cap_keeps_the_initial_states_and_the_best():
    buf = make_buffer(max_size=3, topk_children=10)
    for i in range(5):
        rollout(buf, 0, f"s{i}", 0.1 * (i + 1))  # all worse than the initial state
    buf.end_step()
    assert sorted(s.solution for s in buf.states.values()) == ["init", "s3", "s4"]


def test_children_record_their_lineage_and_score_history():
    buf = make_buffer()
    a = rollout(buf, 0, "a", 2.0)
    b = rollout(buf, a, "b", 3.0)
    state = buf.states[b]
    assert state.lineage == [a, 0] and state.history == [2.0, 1.0]


# --- selection ---
def test_puct_picks_skip_the_lineage_of_earlier_picks():
    buf = make_buffer()
    a = rollout(buf, 0, "a", 5.0)
    aa = rollout(buf, a, "aa", 6.0)
    buf.add_initial("init2", 1.0, 1.0)
    buf.c_puct = 0.0
    picks = [s.id for s in buf.select("puct", 2)]
    assert picks[0] == aa and buf.states[picks[1]].solution == "init2"


def test_selection_repeats_when_too_few_unrelated_states():
    buf = make_buffer()
    assert [s.id for s in buf.select("puct", 3)] == [0, 0, 0]


def test_no_reuse_spreads_the_groups_over_the_initial_states():
    buf = make_buffer()
    buf.add_initial("init2", 1.0, 1.0)
    rollout(buf, 0, "a", 5.0)
    assert [s.solution for s in buf.select("none", 3)] == ["init", "init2", "init"]


def test_greedy_picks_the_best_and_eps_greedy_explores():
    buf = make_buffer(epsilon=1.0, seed=3)
    for i in range(5):
        rollout(buf, 0, f"s{i}", float(i))
    assert buf.select("greedy", 1)[0].solution == "s4"
    explored = {s.id for s in buf.select("eps_greedy", 50)}
    assert len(explored) > 3


def test_an_empty_start_never_wins_best_over_a_scored_state_of_equal_reward():
    buf = Buffer()
    buf.add_initial("", None, 0.0)
    buf.add_initial("x", 0.0, 0.0)
    assert buf.best().solution == "x"


def test_buffer_round_trips_through_a_dict():
    buf = make_buffer()
    rollout(buf, 0, "a", 2.0)
    buf.rng.random()
    copy = Buffer()
    copy.load_dict(buf.to_dict())
    assert copy.to_dict()["states"] == buf.to_dict()["states"]
    assert copy.rng.random() == buf.rng.random()
    assert rollout(copy, 0, "a", 2.0) is None  # duplicates are still known after a reload

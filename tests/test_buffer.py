"""PUCT scoring and the buffer's bookkeeping (DESIGN.md section 4)."""

import math

import pytest

from harness.buffer import Buffer, puct_score, rank_prior


def test_puct_score_by_hand():
    # q + c * scale * P * sqrt(1 + T/G) / (1 + n/G)
    expected = 0.5 + 2.0 * 0.1 * 0.25 * math.sqrt(1 + 16 / 8) / (1 + 4 / 8)
    assert puct_score(0.5, 0.25, 4, 16, 8, 0.1, c=2.0) == pytest.approx(expected)


def test_rank_prior_gives_the_best_n_and_the_last_one():
    prior = rank_prior([0.1, 0.9, 0.5])
    assert prior == pytest.approx([1 / 6, 3 / 6, 2 / 6])


def make_buffer(**kw) -> Buffer:
    buf = Buffer(group_size=2, **kw)
    buf.add_initial("init", 1.0, 1.0)
    return buf


def test_visits_and_best_reachable_propagate_to_ancestors():
    buf = make_buffer()
    (child, _) = buf.record_group(0, [("a", 2.0, 2.0, True), ("b", 0.5, 0.5, True)], step=0)[:2]
    buf.record_group(child, [("c", 5.0, 5.0, True), ("d", 0.0, 0.0, False)], step=1)
    root, mid = buf.states[0], buf.states[child]
    assert (root.visits, mid.visits) == (4, 2)
    assert root.best_reachable == 5.0 and mid.best_reachable == 5.0
    assert buf.total_expansions == 4


def test_only_the_top_k_valid_non_duplicate_children_join():
    buf = make_buffer(topk_children=2)
    ids = buf.record_group(0, [("init", 9.0, 9.0, True), ("x", 3.0, 3.0, True),
                               ("bad", 8.0, 0.0, False), ("y", 2.0, 2.0, True),
                               ("z", 1.0, 1.0, True)], step=0)
    kept = {buf.states[i].solution for i in ids if i is not None}
    assert kept == {"x", "y"}  # "init" duplicates the initial state, "bad" is invalid


def test_q_is_the_best_child_not_the_mean():
    buf = make_buffer()
    a = buf._add(0, "a", 1.0, 1.0, 0).id
    b = buf._add(0, "b", 1.0, 1.0, 0).id
    buf.record_group(a, [("a1", 0.0, 0.0, True), ("a2", 3.0, 3.0, True)], step=1)  # mean 1.5
    buf.record_group(b, [("b1", 2.0, 2.0, True), ("b2", 2.0, 2.0, True)], step=1)  # mean 2.0
    buf.c_puct = 0.0  # compare Q alone
    scores = buf.puct_scores()
    assert scores[a] == 3.0 and scores[b] == 2.0


def test_puct_picks_skip_the_lineage_of_earlier_picks():
    buf = make_buffer()
    a = buf._add(0, "a", 5.0, 5.0, 0).id
    aa = buf._add(a, "aa", 6.0, 6.0, 1).id
    b = buf._add(0, "b", 4.0, 4.0, 0).id
    buf.c_puct = 0.0
    picks = [s.id for s in buf.select("puct", 2)]
    assert picks[0] == aa and picks[1] == b  # a (ancestor of aa) and the root are blocked


def test_selection_repeats_when_too_few_unrelated_states():
    buf = make_buffer()
    assert [s.id for s in buf.select("puct", 3)] == [0, 0, 0]


def test_no_reuse_always_starts_from_the_initial_state():
    buf = make_buffer()
    buf._add(0, "a", 5.0, 5.0, 0)
    assert [s.id for s in buf.select("none", 2)] == [0, 0]


def test_greedy_picks_the_best_and_eps_greedy_explores():
    buf = make_buffer(epsilon=1.0, seed=3)
    for i in range(5):
        buf._add(0, f"s{i}", float(i), float(i), 0)
    assert buf.select("greedy", 1)[0].solution == "s4"
    explored = {s.id for s in buf.select("eps_greedy", 50)}
    assert len(explored) > 3


def test_trim_keeps_the_initial_states_and_the_best():
    buf = make_buffer(max_size=3)
    for i in range(5):
        buf._add(0, f"s{i}", -float(i), -float(i), 0)  # all worse than the initial state
    buf.trim()
    assert sorted(s.solution for s in buf.states.values()) == ["init", "s0", "s1"]


def test_buffer_round_trips_through_a_dict():
    buf = make_buffer()
    buf.record_group(0, [("a", 2.0, 2.0, True)], step=0)
    buf.rng.random()
    copy = Buffer(group_size=2)
    copy.load_dict(buf.to_dict())
    assert copy.to_dict()["states"] == buf.to_dict()["states"]
    assert copy.rng.random() == buf.rng.random()

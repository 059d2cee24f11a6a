"""ac1, ac2, cp26, cp32: verifiers against independent computations, known-bad inputs, parsers,
both actions end to end (programs through the sandbox) and `harness score` on JSON files."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from envs.ac1.verifier import ac1_bound, autoconvolution, check_sequence
from envs.ac2.verifier import ac2_bound, ratio_of_autoconvolution
from envs.circle_packing.env import grid_packing, shown_circles
from envs.circle_packing.verifier import TOLERANCE, check_packing, sum_of_radii
from harness.cli import main
from harness.env import format_score, make_env


def direct_autoconvolution(a):
    """a * a by the defining double loop."""
    g = [0.0] * (2 * len(a) - 1)
    for i, ai in enumerate(a):
        for j, aj in enumerate(a):
            g[i + j] += ai * aj
    return g


def direct_ac2(a):
    """The C2 ratio by loops: trapezoid pieces of the piecewise linear g, squared exactly."""
    g = direct_autoconvolution(a)
    y = [0.0, *g, 0.0]
    h = 1.0 / (len(g) + 1)
    l2 = sum(h / 3 * (y[i] ** 2 + y[i] * y[i + 1] + y[i + 1] ** 2) for i in range(len(y) - 1))
    return l2 / (sum(g) * h * max(g))


# --- ac1 verifier ---
@pytest.mark.parametrize("n", [1, 2, 20, 1000])
def test_a_constant_sequence_has_ac1_bound_two(n):
    assert ac1_bound([0.7] * n) == pytest.approx(2.0, rel=1e-12)


def test_ac1_matches_the_definition_on_a_small_random_sequence():
    a = np.random.default_rng(0).uniform(0, 1, size=17).tolist()
    expected = 2 * len(a) * max(direct_autoconvolution(a)) / sum(a) ** 2
    assert ac1_bound(a) == pytest.approx(expected, rel=1e-12)


def test_ac1_is_scale_invariant_even_at_extreme_magnitudes():
    a = np.random.default_rng(1).uniform(0, 1, size=50)
    assert ac1_bound(a * 1e200) == pytest.approx(ac1_bound(a), rel=1e-12)
    assert ac1_bound(a * 1e-200) == pytest.approx(ac1_bound(a), rel=1e-12)


BAD_SEQUENCES = [
    ([], "non-empty"), ([1.0, float("nan"), 1.0], "NaN"), ([1.0, float("inf")], "infinity"),
    ([1.0, -0.1, 1.0], "non-negative"), ([0.0, 0.0, 0.0], "zero everywhere"),
    ([[1.0, 1.0], [1.0, 1.0]], "flat"), ([1.0, [1.0, 2.0]], "flat"), (["a", "b"], "flat"),
]


@pytest.mark.parametrize("bad, why", BAD_SEQUENCES)
def test_ac1_verifier_rejects_bad_sequences(bad, why):
    with pytest.raises(ValueError, match=why):
        ac1_bound(bad)


# --- ac2 verifier ---
def test_a_single_step_has_ac2_ratio_two_thirds_by_hand():
    # g = [1]; y = [0, 1, 0], h = 1/2: L2^2 = 2 * (1/6) = 1/3, L1 = 1/2, Linf = 1
    assert ac2_bound([3.0]) == pytest.approx(2 / 3, rel=1e-12)


def test_ac2_matches_the_definition_on_a_small_random_sequence():
    a = np.random.default_rng(2).uniform(0, 1, size=15).tolist()
    assert ac2_bound(a) == pytest.approx(direct_ac2(a), rel=1e-12)


@pytest.mark.parametrize("bad, why", BAD_SEQUENCES)
def test_ac2_verifier_rejects_bad_sequences(bad, why):
    with pytest.raises(ValueError, match=why):
        ac2_bound(bad)


# --- FFT convolution ---
@pytest.mark.parametrize("n", [2000, 3001, 4999])
def test_fft_autoconvolution_matches_np_convolve_to_1e_9(n):
    a = np.random.default_rng(n).uniform(0, 1, size=n)
    a[np.random.default_rng(n + 1).random(n) < 0.3] = 0.0  # sparse spots, like real steps
    direct = np.convolve(a, a)
    assert np.max(np.abs(autoconvolution(a) - direct)) / direct.max() < 1e-9
    direct_c1 = 2 * n * direct.max() / a.sum() ** 2
    assert abs(ac1_bound(a) - direct_c1) / direct_c1 < 1e-9
    direct_c2 = ratio_of_autoconvolution(direct)
    assert abs(ac2_bound(a) - direct_c2) / direct_c2 < 1e-9


def test_fft_round_off_below_zero_is_clipped_and_nothing_else_changes():
    a = np.zeros(3000)
    a[:40] = np.random.default_rng(3).uniform(0, 1, 40)
    a[-40:] = np.random.default_rng(4).uniform(0, 1, 40)  # exact g is 0 over a long middle
    length = 2 * a.size - 1
    raw = np.fft.irfft(np.fft.rfft(a, 6000) ** 2, 6000)[:length]
    assert raw.min() < 0  # the round-off this test is about does occur
    g = autoconvolution(a)
    assert g.min() == 0.0
    assert np.array_equal(g[raw > 0], raw[raw > 0])
    assert np.max(np.abs(g - np.convolve(a, a))) < 1e-12


def test_check_sequence_scales_to_max_one():
    assert check_sequence([2.0, 4.0]).tolist() == [0.5, 1.0]


# --- circle packing verifier ---
def test_four_quarter_circles_in_a_two_by_two_grid_sum_to_one():
    circles = [[0.25, 0.25, 0.25], [0.75, 0.25, 0.25], [0.25, 0.75, 0.25], [0.75, 0.75, 0.25]]
    assert sum_of_radii(circles, 4) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("n, k", [(26, 6), (32, 6)])
def test_the_grid_initial_packing_sums_n_over_2k(n, k):
    assert sum_of_radii(grid_packing(n), n) == pytest.approx(n / (2 * k), rel=1e-12)


def test_touching_within_the_tolerance_is_valid_and_beyond_it_is_not():
    def pair(grow):
        return [[0.25, 0.5, 0.25 + grow], [0.75, 0.5, 0.25 + grow]]

    assert sum_of_radii(pair(TOLERANCE / 10), 2) == pytest.approx(0.5, abs=1e-9)
    with pytest.raises(ValueError, match="overlap|sticks out"):
        sum_of_radii(pair(TOLERANCE * 10), 2)


GOOD = [[0.25, 0.25, 0.25], [0.75, 0.25, 0.25], [0.25, 0.75, 0.25], [0.75, 0.75, 0.25]]


def _with(i, circle):
    return [circle if k == i else c for k, c in enumerate(GOOD)]


@pytest.mark.parametrize("bad, why", [
    ([], "expected 4 circles, got 0"), (GOOD[:3], "expected 4 circles, got 3"),
    ([c[:2] for c in GOOD], "triples"), ([[0.1, 0.1, 0.1], [0.5, 0.5]], "triples"),
    (_with(1, [0.75, 0.25, float("nan")]), "NaN"), (_with(2, [0.25, 0.75, -0.1]), "positive"),
    (_with(2, [0.25, 0.75, 0.0]), "positive"), (_with(3, [0.8, 0.75, 0.25]), "circle 3 sticks out"),
    (_with(0, [0.25, -0.1, 0.1]), "sticks out"), (_with(1, [0.5, 0.25, 0.25]), "circles 0 and 1"),
    (_with(0, [0.75, 0.75, 0.1]), "overlap"), ([["a", 1, 1]] * 4, "numbers"),
])
def test_circle_verifier_rejects_bad_packings(bad, why):
    with pytest.raises(ValueError, match=why):
        check_packing(bad, 4)


def test_shown_circles_are_a_valid_packing_even_when_the_state_is_tight():
    rng = np.random.default_rng(5)
    xy = np.array(grid_packing(26))[:, :2] + rng.uniform(-0.02, 0.02, (26, 2))
    dist = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(dist, np.inf)
    walls = np.minimum(xy, 1 - xy).min(axis=1)
    r = np.minimum(walls, dist.min(axis=1) / 2)  # each circle touches a wall or a neighbour
    circles = np.column_stack([xy, r])
    check_packing(circles, 26)
    with pytest.raises(ValueError):  # plain rounding would show an invalid packing
        check_packing(np.round(circles, 4), 26)
    shown = [[float(v) for v in line.split()] for line in shown_circles(circles).splitlines()]
    assert sum_of_radii(shown, 26) == pytest.approx(circles[:, 2].sum(), abs=26 * 2e-4)


# --- construction parsing on model-like text ---
@pytest.mark.parametrize("text", [
    "Sure! Here are the circles:\n(0.25, 0.25, 0.25)\n(0.75, 0.25, 0.25)\n(0.25, 0.75, 0.25)\n"
    "(0.75, 0.75, 0.25)\nThis should have a higher score.",
    "[[0.25, 0.25, 0.25], [0.75, 0.25, 0.25], [0.25, 0.75, 0.25], [0.75, 0.75, 0.25]]",
    "0.25 0.25 0.25 0.75 0.25 0.25\n0.25 0.75 0.25\n0.75 0.75 .25",
])
def test_circles_are_parsed_leniently_in_threes(text):
    assert np.allclose(make_env("cp26").parse_construction(text), GOOD, rtol=0, atol=1e-15)


def test_a_missing_coordinate_is_invalid_with_the_count():
    result = make_env("cp26").evaluate("0.1 0.1 0.1\n0.3 0.1\n0.5 0.5 0.1", "construction")
    assert not result.valid and "8 numbers, not a multiple of 3" in result.message


@pytest.mark.parametrize("completion, valid, reason", [
    ("\n".join(" ".join(map(str, c)) for c in grid_packing(26)), True, "ok"),
    ("Here you go:\n" + "\n".join(f"({x}, {y}, {r})" for x, y, r in grid_packing(26)), True, "ok"),
    ("\n".join(" ".join(map(str, c)) for c in grid_packing(25)), False, "expected 26 circles"),
    ("\n".join(f"{x} {y} 0.2" for x, y, _ in grid_packing(26)), False, "sticks out"),
    ("0.5 0.5 0.1\n" * 26, False, "overlap"),
    ("I cannot do that.", False, "no list of numbers"),
])
def test_cp26_construction_actions_are_valid_or_say_why(completion, valid, reason):
    result = make_env("cp26").evaluate(completion, "construction")
    assert result.valid is valid and reason in result.message
    assert result.reward == (pytest.approx(26 / 12) if valid else 0.0)


@pytest.mark.parametrize("name, completion, raw, reward", [
    ("ac1", "Here: [1, 1, 1, 1] done", 2.0, 0.5),
    ("ac2", "[5]", 2 / 3, 2 / 3),
])
def test_sequence_construction_actions_score_and_reward(name, completion, raw, reward):
    result = make_env(name).evaluate(completion, "construction")
    assert result.valid, result.message
    assert result.raw_score == pytest.approx(raw) and result.reward == pytest.approx(reward)


@pytest.mark.parametrize("name, reason", [("ac1", "non-negative"), ("ac2", "NaN")])
def test_sequence_construction_actions_say_why_they_are_invalid(name, reason):
    completion = "[1, -2, 3]" if name == "ac1" else "[1, nan, 3]"
    result = make_env(name).evaluate(completion, "construction")
    assert not result.valid and reason in result.message and result.reward == 0.0


# --- initial states and prompts ---
@pytest.mark.parametrize("name", ["ac1", "ac2", "cp26", "cp32"])
@pytest.mark.parametrize("action", ["construction", "program"])
def test_initial_states_are_valid_and_their_prompts_show_them(name, action):
    env = make_env(name, eval_timeout_s=20)
    [solution] = env.initial_solutions(action)
    result = env.score(solution, action)
    assert result.valid, result.message
    text = env.prompt(solution, result.raw_score, action)
    assert format_score(result.raw_score) in text
    assert ("def run" in text) == (action == "program")
    if action == "program":
        assert "numpy and scipy" in text and "10 seconds" in text


def test_long_ac1_states_are_downsampled_in_the_prompt_and_it_says_so():
    env = make_env("ac1")
    text = env.prompt(json.dumps([1.0] * 30_000), 2.0, "construction")
    assert "downsampled" in text and "30000 non-negative numbers" in text and len(text) < 3000


def test_the_circle_prompt_shows_one_triple_per_line():
    env = make_env("cp32")
    [solution] = env.initial_solutions("construction")
    text = env.prompt(solution, 32 / 12, "construction")
    assert "0.0833 0.0833 0.0832" in text and "32 new circles" in text
    assert env.answer_prefix("construction") == ""


# --- program actions through the sandbox ---
@pytest.mark.parametrize("name, body, raw", [
    ("ac1", "return np.ones(30)", 2.0),
    ("ac2", "return {'sequence': np.ones(7).tolist()}", 2 / 3),
    ("cp26", "k = 6\n    return np.array([[(i % k + .5) / k, (i // k + .5) / k, .5 / k] "
             "for i in range(26)])", 26 / 12),
    ("cp32", "return {'circles': [[.25, .25, .25]] * 32}", None),
])
def test_program_actions_run_in_the_sandbox(name, body, raw):
    completion = f"Try this:\n```python\nimport numpy as np\n\ndef run(seed, budget_s):\n" \
                 f"    {body}\n```"
    result = make_env(name, eval_timeout_s=20).evaluate(completion, "program")
    if raw is None:
        assert not result.valid and "overlap" in result.message
    else:
        assert result.valid, result.message
        assert result.raw_score == pytest.approx(raw)


def test_a_circle_program_returning_pairs_is_invalid_with_a_reason():
    completion = "```python\ndef run(seed, budget_s):\n    return [[0.5, 0.5]] * 26\n```"
    result = make_env("cp26", eval_timeout_s=20).evaluate(completion, "program")
    assert not result.valid and "[x, y, r] triples" in result.message


# --- harness score on JSON constructions ---
@pytest.mark.parametrize("name, data, raw", [
    ("ac1", {"sequence": [1.0] * 50}, 2.0),
    ("ac2", {"sequence": [2.0]}, 2 / 3),
    ("cp26", {"circles": grid_packing(26)}, 26 / 12),
    ("cp32", {"circles": grid_packing(32)}, 32 / 12),
])
def test_harness_score_reads_a_json_construction(tmp_path, name, data, raw):
    path = tmp_path / "candidate.json"
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["score", name, str(path)])
    assert result.exit_code == 0, result.output
    assert float(result.output.strip().splitlines()[-1]) == pytest.approx(raw)


@pytest.mark.parametrize("data, reason", [
    ({"circles": [[0.5, 0.5]] * 26}, "[x, y, r] triples"),
    ({"sequence": [0.1] * 78}, "circles"),
    ({"circles": grid_packing(26)[:-1]}, "expected 26 circles, got 25"),
])
def test_harness_score_of_a_bad_circle_file_exits_1_with_one_line(tmp_path, data, reason):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["score", "cp26", str(path)])
    assert result.exit_code == 1 and reason in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_circle_export_round_trips_through_load_file():
    env = make_env("cp26")
    [solution] = env.initial_solutions("construction")
    suffix, text = env.export(solution, "construction")
    assert suffix == ".json" and "circles" in json.loads(text)
    assert env.load_file(text, suffix) == (solution, "construction")

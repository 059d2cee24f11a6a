"""Env contract, verifiers and construction parsers (known-good and known-bad inputs)."""

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from envs.erdos.verifier import erdos_c5, scale_and_cap
from envs.toy.env import distinct_letters
from harness.env import EnvError, extract_code, make_env, parse_number_list
from harness.env.contract import STDOUT_TAIL

SHARED_ERDOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "erdos" / \
    "ttt_erdos_sequence.json"


# --- Erdős verifier ---
def test_constant_half_has_c5_one_half():
    assert erdos_c5([0.5] * 20) == pytest.approx(0.5)


def test_erdos_c5_matches_a_direct_double_loop():
    rng = np.random.default_rng(0)
    h = rng.uniform(0.2, 0.8, size=13)
    n = h.size
    hn = h * (n / 2) / h.sum()
    direct = max(sum(hn[j] * (1 - hn[j + k]) for j in range(n) if 0 <= j + k < n)
                 for k in range(-n + 1, n)) * 2 / n
    assert erdos_c5(h) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("bad, why", [
    ([], "non-empty"), ([0.5, float("nan"), 0.5], "NaN"), ([0.5, -0.1, 0.5], "[0, 1]"),
    ([0.5, 1.5], "[0, 1]"), ([0.0, 0.0, 0.0], "zero"), ([1.0, 0.0, 0.0, 0.0], "rescaling"),
    ([[0.5, 0.5]], "flat"),
])
def test_erdos_verifier_rejects_bad_step_functions(bad, why):
    with pytest.raises(ValueError, match="|".join([why.replace("[", r"\[").replace("]", r"\]")])):
        erdos_c5(bad)


@pytest.mark.skipif(not SHARED_ERDOS.exists(), reason="../shared/data is not present")
def test_published_erdos_construction_scores_0_380875():
    h = json.loads(SHARED_ERDOS.read_text())["sequence"]
    assert erdos_c5(h) == pytest.approx(0.380875, abs=1e-6)


def test_scale_and_cap_gives_mean_one_half_and_values_in_unit_interval():
    h = scale_and_cap([3, 2, 1, 0, 5, 5, 0.5])
    assert h.mean() == pytest.approx(0.5, abs=1e-12) and h.max() <= 1.0 and h.min() >= 0


def test_scale_and_cap_is_the_identity_on_valid_normalised_functions():
    h = np.array([0.25, 0.75, 0.5, 0.5])
    assert np.allclose(scale_and_cap(h), h)


@pytest.mark.parametrize("bad", [[1.0, 0, 0, 0], [-1.0, 1, 1], [float("inf"), 1, 1]])
def test_scale_and_cap_rejects_what_no_scaling_can_fix(bad):
    with pytest.raises(ValueError):
        scale_and_cap(bad)


# --- parsers on model-like text ---
@pytest.mark.parametrize("text, expected", [
    ("[0.1, 0.2, 0.3]", [0.1, 0.2, 0.3]),
    ("Here are 24 values:\n0.1 0.2\n0.3; 0.4\nHope it helps!", [0.1, 0.2, 0.3, 0.4]),
    ("(0.5, 0.6], [0.7)", [0.5, 0.6, 0.7]),
    ("1e-1,2E-1,.3", [0.1, 0.2, 0.3]),
    ("[0.1, 0.2, score 0.3]", [0.1, 0.2]),
])
def test_number_lists_are_parsed_leniently(text, expected):
    assert parse_number_list(text) == pytest.approx(expected)


def test_nan_survives_parsing_for_the_verifier_to_reject():
    assert math.isnan(parse_number_list("[0.1, NaN, 0.3]")[1])


def test_text_without_numbers_has_a_clear_reason():
    with pytest.raises(ValueError, match="no list of numbers"):
        parse_number_list("I cannot help with that.")


@pytest.mark.parametrize("completion, valid, reason", [
    ("[0.3, 0.5, 0.9, 0.5, 0.3]", True, "ok"),
    ("Sure! Here it is: [0.3, 0.5,\n 0.9, 0.5, 0.3] Done.", True, "ok"),
    ("[0.2, 0.5]", False, "length 2"),
    ("[0.2, nan, 0.5, 0.5]", False, "NaN"),
    ("[0.2, -3, 0.5, 0.5]", False, "non-negative"),
    ("[1, 0, 0, 0, 0]", False, "half"),
    ("no numbers here", False, "no list of numbers"),
])
def test_erdos_construction_actions_are_valid_or_say_why(completion, valid, reason):
    result = make_env("erdos").evaluate(completion, "construction")
    assert result.valid is valid
    assert reason in result.message
    assert result.reward == (pytest.approx(1 / result.raw_score) if valid else 0.0)


def test_erdos_stored_state_is_the_scaled_function_and_scores_strictly():
    env = make_env("erdos")
    result = env.evaluate("[2, 1, 1, 2, 1]", "construction")
    h = json.loads(result.solution)
    assert max(h) <= 1 and np.mean(h) == pytest.approx(0.5)
    assert env.score(result.solution, "construction").raw_score == pytest.approx(result.raw_score)


def test_erdos_prompt_shows_the_state_and_its_score():
    env = make_env("erdos")
    [solution] = env.initial_solutions("construction")
    text = env.prompt(solution, 0.5, "construction")
    assert "Its score is 0.5;" in text and "20 non-negative numbers" in text
    program = env.initial_solutions("program")[0]
    assert "def run" in env.prompt(program, 0.5, "program")


def test_a_prompt_shows_numbers_to_the_env_s_digits_and_the_state_keeps_them_all():
    values = [0.123456, 0.876543, 0.5, 0.5]
    erdos, ac1 = make_env("erdos"), make_env("ac1")
    assert "[0.12, 0.88, 0.5, 0.5]" in erdos.prompt(json.dumps(values), 0.5, "construction")
    assert "[0.1235, 0.8765, 0.5, 0.5]" in ac1.prompt(json.dumps(values), 2.0, "construction")
    stored = json.loads(erdos.evaluate(json.dumps(values), "construction").solution)
    assert stored[0] == pytest.approx(0.123456)  # only the shown parent is rounded


def test_long_states_are_downsampled_in_the_prompt_and_it_says_so():
    env = make_env("erdos")
    text = env.prompt(json.dumps([0.5] * 600), 0.5, "construction")
    assert "downsampled" in text and "600 non-negative numbers" in text


# --- program actions through the sandbox ---
def test_erdos_program_action_runs_in_the_sandbox():
    env = make_env("erdos", eval_timeout_s=20)
    completion = ("Here:\n```python\nimport numpy as np\n\ndef run(seed, budget_s):\n"
                  "    return np.full(10, 0.5)\n```")
    result = env.evaluate(completion, "program")
    assert result.valid, result.message
    assert result.raw_score == pytest.approx(0.5)


@pytest.mark.parametrize("completion, reason", [
    ("def run(seed, budget_s): return [0.5]*10", "no ``` code block"),
    ("```python\ndef run(seed, budget_s):\n    return undefined_name\n```", "NameError"),
    ("```python\ndef run(seed, budget_s):\n    return 'abc'\n```", "list of numbers"),
])
def test_erdos_failing_programs_are_invalid_with_a_reason(completion, reason):
    result = make_env("erdos", eval_timeout_s=20).evaluate(completion, "program")
    assert not result.valid and reason in result.message


def test_extract_code_takes_the_last_block_even_if_unclosed():
    assert extract_code("```python\na = 1\n```\ntext\n```python\nb = 2\n") == "b = 2"


# --- toy ---
def test_toy_counts_distinct_letters():
    assert distinct_letters("Hello, World") == 7
    result = make_env("toy").evaluate("\n  the quick brown fox  \nsecond line", "construction")
    assert result.valid and result.raw_score == 15 and result.reward == pytest.approx(15 / 26)


def test_toy_rejects_empty_answers():
    assert not make_env("toy").evaluate("   \n", "construction").valid


def test_unknown_env_lists_the_available_ones():
    with pytest.raises(EnvError, match="available: toy, erdos"):
        make_env("nope")


def test_unsupported_action_is_refused():
    with pytest.raises(EnvError, match="supports actions"):
        make_env("erdos").check_action("telepathy")


# --- diverse initial states (issue 17 fact 5) ---
def test_erdos_initial_states_follow_the_released_random_start():
    env = make_env("erdos")
    starts = env.initial_states("construction", random.Random(0), 64)
    lengths = [len(json.loads(s.solution)) for s in starts]
    assert len(starts) == 64 and all(40 <= n < 100 for n in lengths) and len(set(lengths)) > 10
    for s in starts:
        h = np.array(json.loads(s.solution))
        assert s.valid and np.mean(h) == pytest.approx(0.5) and 0 < h.min() < h.max() < 1
    assert len({s.solution for s in starts}) == 64


def test_initial_states_are_drawn_from_the_seed_alone():
    env = make_env("erdos")
    first = [s.solution for s in env.initial_states("construction", random.Random(7), 4)]
    again = [s.solution for s in env.initial_states("construction", random.Random(7), 4)]
    other = [s.solution for s in env.initial_states("construction", random.Random(8), 4)]
    assert first == again != other


def test_erdos_program_starts_are_empty_programs_holding_a_construction():
    env = make_env("erdos")
    [start] = env.initial_states("program", random.Random(0), 1)
    assert start.solution == "" and start.valid
    assert env.score(start.construction, "construction").raw_score == start.raw_score


@pytest.mark.parametrize("name", ["ac1", "ac2"])
def test_ac_starts_are_constant_sequences_of_1000_to_8000_redrawn_when_picked(name):
    env = make_env(name)
    assert env.redraws_initial
    rng = random.Random(0)
    starts = [env.redraw_initial("program", rng) for _ in range(5)]
    for s in starts:
        values = json.loads(s.construction)
        assert 1000 <= len(values) < 8000 and len(set(values)) == 1
        assert "parent_construction" in s.solution
    assert len({s.construction for s in starts}) == 5


@pytest.mark.parametrize("name", ["cp26", "ahc039", "toy"])
def test_programs_without_a_released_start_begin_empty_with_value_0(name):
    env = make_env(name)
    starts = env.initial_states("program", random.Random(0), 3)
    assert [(s.solution, s.raw_score, s.reward) for s in starts] == [("", None, 0.0)] * 3


# --- programs get their parent's construction and leave their stdout ---
def test_a_program_receives_its_parents_construction_and_its_stdout_is_kept():
    env = make_env("erdos", eval_timeout_s=20)
    parent = json.dumps([0.25, 0.75] * 10)
    program = ("def run(seed, budget_s):\n    print('x' * 600 + 'END')\n"
               "    return [1 - v for v in parent_construction]\n")
    result = env.score(program, "program", parent)
    assert result.valid, result.message
    assert json.loads(result.construction) == [0.75, 0.25] * 10
    assert result.stdout.endswith("END\n") and len(result.stdout) == STDOUT_TAIL


def test_without_a_parent_the_global_is_none():
    env = make_env("erdos", eval_timeout_s=20)
    program = ("def run(seed, budget_s):\n"
               "    return [0.5] * 8 if parent_construction is None else []\n")
    assert env.score(program, "program").valid

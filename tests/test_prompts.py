"""Prompts hold what the released code's prompts hold (issue 17, fact 6): the statement, the
parent (program or construction), its score and its ancestors' scores, the best known value,
and a program's stdout tail; an over-long parent is shortened in its middle, never the
statement. Snapshots: tests/snapshots/prompts/<env>-<action>.txt; after an intended change,
regenerate them with HARNESS_UPDATE_SNAPSHOTS=1 and read the diff."""

import os
import random
from pathlib import Path

import pytest

from harness.env import Env, format_score, make_env
from harness.loop.buffer import Buffer, State
from harness.loop.prompts import fit_prompt, render
from tests.test_trimul import CpuTriMul

SNAPSHOTS = Path(__file__).parent / "snapshots" / "prompts"
STDOUT = "iteration 1: 0.51\n" * 40 + "iteration 41: 0.4321 (final)\n"
PROGRAM = "def run(seed, budget_s):\n    return list(parent_construction)\n"
CPP = "#include <cstdio>\nint main() { puts(\"4\\n0 0\\n9 0\\n9 9\\n0 9\"); }\n"
CASES = [("toy", "construction"), ("toy", "program"), ("erdos", "construction"),
         ("erdos", "program"), ("ac1", "construction"), ("ac1", "program"),
         ("ac2", "construction"), ("ac2", "program"), ("cp26", "construction"),
         ("cp26", "program"), ("ahc039", "program"), ("ahc058", "program"),
         ("trimul", "program")]


def env_for(name: str) -> Env:
    return CpuTriMul() if name == "trimul" else make_env(name)


def parent_state(env: Env, action: str) -> State:
    """A state two steps deep: a real initial state's construction (for an empty start, the
    reference construction, or a made-up score), a program where the action is one, two
    ancestors' scores, and a stdout tail for Python programs."""
    [start] = env.initial_states(action, random.Random(0), 1)
    construction, raw = start.construction, start.raw_score
    if raw is None:
        construction = env.initial_solutions("construction")[0] if env.has_construction else ""
        raw = env.score(construction, "construction").raw_score if construction else 1234.0
    buf = Buffer()
    root = buf.add_initial(start.solution, raw * 1.2, 1.0, construction)
    mid = buf._add(buf.child(root.id, start.solution, raw * 1.1, 2.0, 0, construction))
    solution = start.solution
    if action == "program":
        solution = {"ahc039": CPP, "ahc058": CPP,
                    "trimul": env.initial_solutions("program")[0]}.get(env.name, PROGRAM)
    stdout = STDOUT if action == "program" and env.has_construction else ""
    return buf.child(mid.id, solution, raw, 3.0, 1, construction, stdout)


@pytest.mark.parametrize("name, action", CASES)
def test_the_prompt_matches_its_snapshot_and_shows_history_target_and_stdout(name, action):
    env = env_for(name)
    state = parent_state(env, action)
    text = render(env, state, action, history_len=5)
    history = " -> ".join(format_score(v) for v in
                          [*reversed(state.history), state.raw_score])
    assert history in text
    if env.best_known is not None:
        assert f"best known {env.objective} is {format_score(env.best_known)}" in text
    if state.stdout:
        assert "iteration 41: 0.4321 (final)" in text and STDOUT not in text  # only the tail
    if action == "program" and env.has_construction:
        assert "`parent_construction`" in text
    path = SNAPSHOTS / f"{name}-{action}.txt"
    if os.environ.get("HARNESS_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no snapshot {path.name}: run with HARNESS_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text()


@pytest.mark.parametrize("name", ["erdos", "cp26", "ahc039", "trimul"])
def test_an_empty_start_asks_for_a_program_from_scratch(name):
    env = env_for(name)
    text = env.prompt("", None, "program")
    assert "There is no program yet" in text and "```python\n\n```" not in text


def test_an_erdos_program_start_is_empty_but_carries_its_construction():
    env = make_env("erdos")
    [start] = env.initial_states("program", random.Random(1), 1)
    text = env.prompt(start.solution, start.raw_score, "program",
                      construction=start.construction)
    n = len(env.construction_value(start.construction))
    assert start.solution == "" and 40 <= n < 100
    assert f"The current construction ({n} values, C5 = {format_score(start.raw_score)})" in text


def words(text: str) -> int:
    return len(text.split())


def test_an_over_long_parent_is_shortened_in_its_middle_and_the_statement_survives():
    env = make_env("erdos")
    body = "".join(f"    x_{i} = {i} * 2  # step {i}\n" for i in range(2000))
    program = "def run(seed, budget_s):\n" + body + "    return [0.5] * 10\n"
    state = State(1, 0, program, 0.45, 1 / 0.45, 0, history=[0.5])
    full = render(env, state, "program", 5)
    text, shortened = fit_prompt(env, state, "program", 1500, 5, words)
    assert shortened and words(text) <= 1500 < words(full)
    assert text.startswith("You are improving a program for the Erdős minimum overlap")
    assert "characters omitted from the middle" in text
    assert "def run(seed, budget_s):" in text and "return [0.5] * 10" in text
    assert "Write an improved program with a lower C5" in text


def test_a_prompt_that_fits_is_left_whole():
    env = make_env("erdos")
    state = State(1, 0, PROGRAM, 0.45, 1 / 0.45, 0)
    text, shortened = fit_prompt(env, state, "program", 10_000, 5, words)
    assert not shortened and text == render(env, state, "program", 5)

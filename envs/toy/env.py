"""Toy env: write a line using as many different letters as possible (seconds-fast, for tests).

A `Problem` (harness/env/problem.py) with its own prompts and a line of text as its
construction. Raw score: the number of distinct letters a-z (case-insensitive) in the first
40 characters of the answer's first non-empty line; higher is better; reward = raw / 26. Even
a random model scores above zero, so the loop has rewards to learn from in tests. Actions:
`construction` (the line itself) and `program` (`run(seed, budget_s)` returning the line).
Initial states: "hello" (construction) or an empty program (program), one per group.
"""

from __future__ import annotations

from pathlib import Path

from harness.env.problem import Problem

MAX_CHARS = 40


def distinct_letters(text: str) -> int:
    """The verifier: how many of the 26 letters occur in `text`."""
    if not isinstance(text, str):
        raise ValueError("the answer must be text")
    if not text.strip():
        raise ValueError("the answer is empty")
    return len({c for c in text.lower() if "a" <= c <= "z"})


class Toy(Problem):
    name = "toy"
    title = "Distinct letters in a short line (test problem)"
    objective = "distinct letters"
    direction = "max"
    statement = f"Write one line using as many different letters as possible ({MAX_CHARS} count)."
    construction = "text"
    initial_solution = "hello"
    best_known, best_known_source = 26.0, "every letter of the alphabet"
    score_name = "letter count"
    max_length = MAX_CHARS   # only the first 40 characters of the line count
    file_keys = ("text",)
    answer_prefix = "["      # as the toy env always began its answers
    program_start = "empty"
    prompts = Path(__file__).parent

    def score(self, solution: str) -> float:
        return float(distinct_letters(solution))

    def reward(self, raw_score: float) -> float:
        return raw_score / 26.0

"""Toy env: write a line using as many different letters as possible (seconds-fast, for tests).

Raw score: the number of distinct letters a-z (case-insensitive) in the first 40 characters of
the answer's first non-empty line; higher is better; reward = raw / 26. Even a random model
scores above zero, so the loop has rewards to learn from in tests. Actions: `construction`
(the line itself) and `program` (`run(seed, budget_s)` returning the line). Initial states:
"hello" (construction) or an empty program (program), one per group.
"""

from __future__ import annotations

import json

from harness.env import Env
from harness.env.answers import FIRST_LINE, AnswerEnd

MAX_CHARS = 40


def distinct_letters(text: str) -> int:
    """The verifier: how many of the 26 letters occur in `text`."""
    if not isinstance(text, str):
        raise ValueError("the answer must be text")
    if not text.strip():
        raise ValueError("the answer is empty")
    return len({c for c in text.lower() if "a" <= c <= "z"})


class ToyEnv(Env):
    name = "toy"
    title = "Distinct letters in a short line (test problem)"
    objective = "distinct letters"
    direction = "max"
    min_len = 1
    max_len = MAX_CHARS
    best_known = 26.0
    best_known_source = "every letter of the alphabet"
    score_name = "letter count"
    parent_unit = "characters"

    def verify(self, values: str) -> float:
        return float(distinct_letters(values))

    def reward(self, raw: float) -> float:
        return raw / 26.0

    def answer_end(self, action: str) -> AnswerEnd:
        """Only the first line counts, so it ends the answer."""
        return super().answer_end(action) if action == "program" else FIRST_LINE

    def parse_construction(self, text: str) -> str:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            raise ValueError("the answer is empty")
        return lines[0][:MAX_CHARS]  # the prompt states that only 40 characters count

    def canonical(self, values: str) -> str:
        return values

    def from_program_value(self, value) -> str:
        if not isinstance(value, str):
            raise ValueError(f"run() must return a string, got {type(value).__name__}")
        return self.parse_construction(value)

    def export(self, solution: str, action: str) -> tuple[str, str]:
        if action == "program":
            return ".py", solution
        return ".json", json.dumps({"text": solution}) + "\n"

    def load_file(self, text: str, suffix: str) -> tuple[str, str]:
        if suffix == ".py":
            return text, "program"
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return self.parse_construction(text), "construction"  # a plain text file
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise ValueError('expected JSON {"text": "..."} or a plain text file')
        return data["text"], "construction"

    def initial_solutions(self, action: str) -> list[str]:
        if action == "program":
            return ['def run(seed: int, budget_s: float) -> str:\n    return "hello"\n']
        return ["hello"]

    def construction_value(self, construction: str) -> str | None:
        return construction or None

    def shown_solution(self, solution: str, action: str) -> str:
        return solution

    def prompt_vars(self, solution: str, action: str) -> dict:
        return {"max_chars": MAX_CHARS}

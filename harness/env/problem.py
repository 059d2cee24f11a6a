"""Your own problem in one file: a `Problem` subclass, adapted to the env contract.

The least a problem says (everything else has a default, overridden by one field or method):

    from harness.env.problem import Problem

    class MinGap(Problem):
        name = "min_gap"
        title = "Spread 8 points in [0, 1]"
        direction = "max"                   # or "min"
        objective = "smallest gap between two points"
        statement = "Place 8 numbers in [0, 1] so that the smallest gap is as large as possible."
        initial_solution = [0.1 * i for i in range(8)]

        def score(self, solution):          # ValueError("why") when invalid
            ...

- The construction is a flat list of numbers (`construction = "numbers"`) or any JSON value
  (`construction = "json"`). The model writes it, or (program action) writes `run(seed,
  budget_s)` that returns it; programs run only in the sandbox.
- Prompts for both actions are rendered from `statement` (harness/templates/problem/).
- Reward: the score for a max problem, 1 / score for a min one (`reward` to change it).
- Initial states: `initial_solution`, and for number lists copies jittered by at most
  `jitter` that still score (`initial_states` to change it).
- `harness score PROBLEM FILE` reads {"solution": ...} JSON or a .py program.
The user's `score` is trusted code: it runs here, with a `score_timeout_s` limit. One that
raises something other than ValueError, hangs, or returns NaN or a non-number makes that
candidate invalid with a message starting "scorer failed", says so once on stderr, and the
run goes on.
"""

from __future__ import annotations

import json
import math
import random
import sys
import threading
from pathlib import Path

from harness.base.errors import one_line
from harness.base.resources import TEMPLATES
from harness.base.scores import DIRECTIONS, better, default_reward
from harness.env.answers import CODE_BLOCK, FIRST_LINE, AnswerEnd
from harness.env.contract import Env, EnvError, EvalResult, empty_start

REQUIRED = ("name", "title", "direction", "objective", "statement", "initial_solution")
SCORER_FAILED = "scorer failed"
FORMATS = ("numbers", "json", "text")
BUILT_IN = "built-in"  # the source of the problems under envs/: their verifiers' bugs raise


class Problem:
    """A problem: set the fields below and write `score`."""

    name: str = ""               # an id: letters, digits, _ and - (not a built-in env's)
    title: str = ""              # one line, for listings
    direction: str = "max"       # "max": higher scores are better; "min": lower
    objective: str = ""          # what score() measures, in words
    statement: str = ""          # the paragraph the prompt shows the model
    initial_solution = None      # where the search starts: a list of numbers, or JSON
    construction: str = "numbers"  # "numbers" (a flat list), "json" (any value), "text" (a line)
    best_known: float | None = None  # a published best score, shown as the target
    best_known_source: str = ""  # who published it
    score_timeout_s: float = 60.0  # the longest one call of score() may take
    jitter: float = 0.05         # relative jitter of the diverse initial states (numbers)
    # --- what the built-in envs also set (all optional) ---
    score_name: str = "score"    # the score's short name in prompts (C5, C1, ...)
    min_length: int = 1          # bounds on a construction's length (numbers, characters)
    max_length: int = 100_000
    prompt_digits: int = Env.prompt_digits  # significant digits of the numbers the prompt
    #                              shows (a model copies them: fewer digits, shorter answers)
    file_keys: tuple[str, ...] = ("solution",)  # JSON keys of a `harness score` file
    answer_prefix: str | None = None  # what the model's answer starts with (None: "[" for
    #                                   numbers, nothing for json and text)
    program_start: str = "parent"  # a program starts empty, handed its start's construction
    #                                ("parent"), or from nothing ("empty")
    prompts: Path | None = None  # a folder with prompt_construction.j2 / prompt_program.j2
    #                              to use instead of the prompts made from `statement`

    def score(self, solution) -> float:
        """The verifier: the solution's score, or ValueError("why") when it is invalid."""
        raise NotImplementedError

    def reward(self, raw_score: float) -> float:
        """Higher is better, 0 for invalid candidates: the score, or 1 / score for min."""
        return default_reward(raw_score, self.direction)

    def decode(self, values):
        """The rule the prompt states from what the model wrote to the solution (identity)."""
        return values

    def starts(self, rng: random.Random, n: int) -> list:
        """The constructions the search starts from, one per group: `initial_solution`, and
        for number lists copies jittered by up to `jitter` (relative), drawn from `rng`."""
        spread = self.jitter if self.construction == "numbers" else 0.0
        return [self.initial_solution] + [
            [v * (1 + rng.uniform(-spread, spread)) for v in self.initial_solution]
            if spread > 0 else self.initial_solution for _ in range(n - 1)]


class ProblemEnv(Env):
    """The env of a `Problem` (a class per problem: `env_for`)."""

    problem_class: type[Problem] = Problem
    source: str = ""             # where the problem came from: a file, module:Class, a package
    answer_prefixes: dict = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.problem = self.problem_class()
        self._warned: set[str] = set()

    @classmethod
    def template_dir(cls) -> Path:
        return Path(cls.problem_class.prompts or TEMPLATES / "problem")

    # --- the user's scorer, trusted but guarded ---
    def verify(self, values) -> float:
        try:
            raw = _call_with_timeout(self.problem.score, values, self.problem.score_timeout_s)
        except ValueError:
            raise
        except TimeoutError:
            raise self._scorer_failed(
                "timeout", f"no answer within {self.problem.score_timeout_s:g} s") from None
        except Exception as err:  # the user's bug: reported, the run goes on (ours: raised)
            if self.source == BUILT_IN:
                raise
            raise self._scorer_failed(type(err).__name__, one_line(err)) from None
        if isinstance(raw, bool) or not isinstance(raw, int | float) or math.isnan(raw):
            raise self._scorer_failed("not a number", f"score() returned {raw!r}, not a number")
        return float(raw)

    def _scorer_failed(self, kind: str, why: str) -> ValueError:
        line = f"{SCORER_FAILED}: {why}"
        if kind not in self._warned:  # once per kind of failure, on the console
            self._warned.add(kind)
            print(f"harness: {self.name}'s {line} (the candidate counts as invalid; the run "
                  "goes on)", file=sys.stderr, flush=True)
        return ValueError(line)

    def reward(self, raw_score: float) -> float:
        return self.problem.reward(raw_score)

    # --- the construction: numbers (the Env default), JSON, or a line of text ---
    @property
    def kind(self) -> str:
        return self.problem.construction

    def answer_prefix(self, action: str) -> str:
        if action != "construction":
            return ""
        given = self.problem.answer_prefix
        return given if given is not None else "[" if self.kind == "numbers" else ""

    def answer_end(self, action: str) -> AnswerEnd:
        if action == "program" or self.kind == "json":
            return CODE_BLOCK
        return FIRST_LINE if self.kind == "text" else super().answer_end(action)

    def parse_construction(self, text: str):
        if self.kind == "json":
            return _first_json(text)
        if self.kind == "text":  # the first non-empty line, cut at max_length characters
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if not lines:
                raise ValueError("the answer is empty")
            return lines[0][:self.max_len]
        return super().parse_construction(text)

    def decode(self, values):
        return self.problem.decode(values)

    def canonical(self, values) -> str:
        if self.kind == "json":
            return json.dumps(values)
        return values if self.kind == "text" else super().canonical(values)

    def check_size(self, values) -> None:
        if self.kind != "json":  # a JSON value has no length rule
            super().check_size(values)

    def construction_value(self, construction: str):
        return construction or None if self.kind == "text" else \
            super().construction_value(construction)

    def from_program_value(self, value):
        if self.kind == "text":
            if not isinstance(value, str):
                raise ValueError(f"run() must return a string, got {type(value).__name__}")
            return self.parse_construction(value)
        return value if self.kind == "json" else super().from_program_value(value)

    def load_file(self, text: str, suffix: str) -> tuple[str, str]:
        """JSON {file_keys[0]: solution} (a number list: the Env's rule), or for text a
        plain text file."""
        if self.kind == "numbers" or suffix == ".py":
            return super().load_file(text, suffix)
        key = self.file_keys[0]
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            if self.kind == "text":
                return self.parse_construction(text), "construction"
            raise EnvError(f"expected JSON {{\"{key}\": ...}} ({err.msg})") from None
        if not isinstance(data, dict) or key not in data:
            raise EnvError(f'expected JSON {{"{key}": ...}}'
                           + (" or a plain text file" if self.kind == "text" else ""))
        return self.canonical(data[key]), "construction"

    def export(self, solution: str, action: str) -> tuple[str, str]:
        if action == "program" or self.kind == "numbers":
            return super().export(solution, action)
        value = solution if self.kind == "text" else json.loads(solution)
        return ".json", json.dumps({self.file_keys[0]: value}) + "\n"

    def shown_solution(self, solution: str, action: str) -> str:
        if action == "program" or self.kind != "numbers":
            return solution
        return super().shown_solution(solution, action)

    def prompt_vars(self, solution: str, action: str) -> dict:
        shown = super().prompt_vars(solution, action) if self.kind == "numbers" else {}
        return {"n_values": 0, **shown, "better": better(self.direction)}

    # --- starts ---
    def initial_solutions(self, action: str) -> list[str]:
        start = self.problem.initial_solution
        text = self.canonical(start)
        if action != "program":
            return [text]
        if self.kind == "numbers" and len(set(start)) == 1:  # a flat start, as Env writes it
            return super().initial_solutions(action)
        returns = {"numbers": " -> list[float]", "text": " -> str"}.get(self.kind, "")
        return [f"def run(seed: int, budget_s: float){returns}:\n"
                f'    """The initial solution."""\n    return {start!r}\n']

    def initial_states(self, action: str, rng: random.Random, n: int) -> list[EvalResult]:
        """`Problem.starts`, each scored; one that fails score() is replaced by the initial
        solution. A program starts empty, handed its state's construction."""
        if action == "program" and self.problem.program_start == "empty":
            return [empty_start() for _ in range(n)]
        out = []
        for start in self.problem.starts(rng, n):
            try:
                out.append(self.construction_start(start, action))
            except ValueError:
                out.append(self.construction_start(self.problem.initial_solution, action))
        return out


def env_for(problem_class: type[Problem], source: str) -> type[ProblemEnv]:
    """The env class of a problem class, after checking its contract (one-line EnvError)."""
    missing = [f for f in REQUIRED if getattr(problem_class, f, None) in (None, "")]
    if missing:
        raise EnvError(f"{source}: the problem lacks {', '.join(missing)} (see harness new-env)")
    if problem_class.score is Problem.score:
        raise EnvError(f"{source}: the problem has no score(solution) method")
    if problem_class.direction not in DIRECTIONS:
        raise EnvError(f"{source}: direction must be 'min' or 'max', "
                       f"got {problem_class.direction!r}")
    if problem_class.program_start not in ("parent", "empty"):
        raise EnvError(f"{source}: program_start must be 'parent' or 'empty', "
                       f"got {problem_class.program_start!r}")
    digits = problem_class.prompt_digits
    if not isinstance(digits, int) or isinstance(digits, bool) or digits < 1:
        raise EnvError(f"{source}: prompt_digits must be a whole number of at least 1, "
                       f"got {digits!r}")
    if problem_class.construction not in FORMATS:
        raise EnvError(f"{source}: construction must be one of {', '.join(FORMATS)}, "
                       f"got {problem_class.construction!r}")
    p = problem_class
    fields = {"problem_class": p, "source": source, "name": p.name, "title": p.title,
              "objective": p.objective, "direction": p.direction, "best_known": p.best_known,
              "best_known_source": p.best_known_source or ("given by the problem"
                                                           if p.best_known else ""),
              "score_name": p.score_name, "min_len": p.min_length, "max_len": p.max_length,
              "prompt_digits": p.prompt_digits,
              "file_keys": tuple(p.file_keys), "__module__": p.__module__,
              "parent_unit": "characters" if p.construction == "text" else "values"}
    if p.construction == "numbers" and isinstance(p.initial_solution, list | tuple) \
            and p.initial_solution:  # Env's reference program for a flat start
        fields["initial_value"], fields["initial_length"] = (p.initial_solution[0],
                                                             len(p.initial_solution))
    env_class = type(f"{problem_class.__name__}Env", (ProblemEnv,), fields)
    env = env_class()
    start = env.score(env.initial_solutions("construction")[0], "construction")
    if not start.valid:
        raise EnvError(f"{source}: the initial solution fails score(): {start.message}")
    return env_class


def _first_json(text: str):
    """The first JSON value in `text` (a fenced block or bare), else ValueError."""
    decoder = json.JSONDecoder()
    for i, c in enumerate(text):
        if c in "[{\"-0123456789tfn":
            try:
                return decoder.raw_decode(text[i:])[0]
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON value found in the answer")


def _call_with_timeout(fn, arg, timeout_s: float):
    """fn(arg) on its own daemon thread, waited for at most `timeout_s`. A call that overruns
    keeps its thread (Python cannot stop one) but no longer holds up the run: TimeoutError."""
    outcome: dict = {}

    def call() -> None:
        try:
            outcome["value"] = fn(arg)
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=call, name="scorer", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


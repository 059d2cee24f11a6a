"""The environment contract: a problem, its action formats, its verifier and its reward.

An env turns a model's action (its raw completion) into an `EvalResult`:
  completion --extract--> solution text --score--> raw score --reward()--> reward.
Two action formats (issue 13): `program`, where the model writes `run(seed, budget_s)` that the
sandbox executes and whose return value is the construction; and `construction`, where the
model writes the object itself. Parsing is lenient about layout and strict about content:
the verifier, not the parser, decides validity, and nothing is clipped or repaired.
The raw score (the verifier's number: `raw_score` in code and in every CSV) -> reward
transform lives in `Env.reward`, one place per env. Derived numbers keep names of their own:
a run's best (`score/best` in steps.csv, `best_raw` in summary.csv), an arm's `mean_best`.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import jinja2

from harness.base.config import EMBEDDED_MODELS, Config
from harness.base.errors import UserError, message
from harness.base.resources import TEMPLATES, jinja_env
from harness.base.scores import better, default_reward, format_score
from harness.env import answers
from harness.env.answers import AnswerEnd, parse_number_list
from harness.sandbox import runner as sandbox


@dataclass(frozen=True)
class EvalResult:
    valid: bool
    raw_score: float | None
    reward: float
    message: str
    solution: str = ""       # the canonical solution text that was scored (buffer payload)
    artifacts: dict = field(default_factory=dict)
    construction: str = ""   # the construction's canonical text (a program's returned value)
    stdout: str = ""         # the tail of a program's standard output (STDOUT_TAIL chars)


STDOUT_TAIL = 500  # characters of a parent program's stdout that the prompt shows (released)
OMITTED = "\n... [{n} characters omitted from the middle] ...\n"


def empty_start() -> EvalResult:
    """The released code's start for programs without a construction: no program, value 0."""
    return EvalResult(True, None, 0.0, "empty start", "")


def shorten_middle(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters by removing its middle, with a visible marker;
    the head (imports, signature) and the tail (the end of the program) both survive."""
    if len(text) <= limit:
        return text
    tail_n = max(limit, 0) // 2
    head, tail = text[:max(limit, 0) - tail_n], text[len(text) - tail_n:]
    return head + OMITTED.format(n=len(text) - len(head) - len(tail)) + tail


class EnvError(UserError):
    """Unknown env or unsupported action; the message is one line for the user."""


# --- parsing helpers shared by envs ---
_CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|cpp|c\+\+)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str:
    """The last fenced code block in `text` (an unclosed final fence counts)."""
    blocks = _CODE_BLOCK.findall(text)
    if not blocks:
        raise ValueError("no ``` code block in the answer")
    code = blocks[-1].strip()
    if not code:
        raise ValueError("the code block is empty")
    return code


def format_numbers(values, digits: int = 4) -> str:
    return "[" + ", ".join(f"{v:.{digits}g}" for v in values) + "]"


def downsample(values: list[float], limit: int) -> tuple[list[float], bool]:
    """At most `limit` evenly spaced values, and whether anything was dropped."""
    if len(values) <= limit:
        return list(values), False
    step = len(values) / limit
    return [values[int(i * step)] for i in range(limit)], True


# --- the base class ---
class Env:
    """Base for envs whose construction is a list of numbers; subclasses set the class fields
    and `verify`. Envs with other constructions override `parse_construction`.

    A state the search starts from has a solution (what is scored: program source, or the
    construction text) and, where the env has one, a construction; a program receives its
    parent's construction as the module global `parent_construction` (None when the parent
    has none), as the released code hands AC programs their parent's sequence."""

    name: str = ""
    title: str = ""               # one line, for listings
    objective: str = ""           # what the raw score measures
    direction: str = "max"        # "max" or "min": which raw scores are better
    actions: tuple[str, ...] = ("program", "construction")
    min_len: int = 1
    max_len: int = 1000
    prompt_values: int = 200      # states longer than this are downsampled in prompts
    prompt_digits: int = 4        # significant digits of the numbers a prompt shows
    answer_prefixes = {"construction": "["}  # the assistant's answer starts with this text
    file_keys: tuple[str, ...] = ("sequence", "h_values")  # JSON keys of a construction file
    file_example = "[numbers, ...]"  # its shape, for error messages
    parallel_inside: bool = False  # evaluate() runs its own parallel pool (AtCoder cases)
    initial_value: float = 1.0    # the reference start: this value ...
    initial_length: int = 20      # ... repeated this many times (`initial_solutions`)
    best_known: float | None = None  # the published best raw score, shown as the target
    best_known_source: str = ""   # who published it (cited in the env's docstring too)
    has_construction: bool = True  # programs return a construction (False: AtCoder, TriMul)
    redraws_initial: bool = False  # initial states get a fresh construction when picked
    score_name: str = "score"     # the raw score's name in prompts (C5, C1, ...)
    parent_unit: str = "values"   # what a construction is made of, in prompts

    def __init__(self, eval_timeout_s: float = 10.0, seed: int = 0,
                 eval_executor: str = "local"):
        self.eval_timeout_s = eval_timeout_s
        self.seed = seed
        self.eval_executor = eval_executor  # where an env that runs many cases runs them

    @functools.cached_property
    def _templates(self) -> jinja2.Environment:
        """The env's own prompt templates, then the shared pieces in harness/templates."""
        return jinja_env(self.template_dir(), TEMPLATES)

    def __getstate__(self) -> dict:  # an env travels to Ray workers: without its templates
        return {k: v for k, v in self.__dict__.items() if k != "_templates"}

    # --- to override ---
    def verify(self, values: list[float]) -> float:
        """The pure verifier: the raw score, or ValueError saying why the candidate is invalid."""
        raise NotImplementedError

    def reward(self, raw_score: float) -> float:
        """The one raw score -> reward transform: higher is better, 0 for invalid candidates."""
        return default_reward(raw_score, self.direction)

    def initial_solutions(self, action: str) -> list[str]:
        """The reference start (benchmarks, tests): a flat list, as a construction or a
        program. The search starts from `initial_states`."""
        if action == "program":
            return [f"def run(seed: int, budget_s: float) -> list[float]:\n"
                    f'    """A flat start: every value is {self.initial_value}."""\n'
                    f"    return [{self.initial_value}] * {self.initial_length}\n"]
        return [self.canonical([self.initial_value] * self.initial_length)]

    def initial_states(self, action: str, rng: random.Random, n: int) -> list[EvalResult]:
        """The search's `n` start states (one per group of a step, issue 17 fact 5), drawn
        from `rng`. Default: programs start empty with value 0 (the released code's start for
        circle packing, AtCoder and kernels); constructions from the reference start."""
        if action == "program":
            return [empty_start() for _ in range(n)]
        return [self.score(self.initial_solutions(action)[0], action) for _ in range(n)]

    def construction_start(self, values, action: str, program: str = "") -> EvalResult:
        """A start made of a construction: the construction itself (construction action),
        or `program` (empty by default) handed it as `parent_construction`, valued by it."""
        text = self.canonical(values)
        result = self.score(text, "construction")
        if not result.valid:
            raise ValueError(f"{self.name}: an initial construction is invalid: {result.message}")
        if action == "program":
            return replace(result, solution=program, construction=text)
        return replace(result, construction=text)

    def redraw_initial(self, action: str, rng: random.Random) -> EvalResult:
        """A fresh initial state for a picked one (envs with `redraws_initial`)."""
        raise NotImplementedError

    @classmethod
    def template_dir(cls) -> Path:
        return Path(importlib.import_module(cls.__module__).__file__).parent

    # --- the pipeline ---
    def check_action(self, action: str) -> None:
        if action not in self.actions:
            raise EnvError(f"env {self.name} supports actions {', '.join(self.actions)}; "
                           f"got {action!r}")

    def parse_construction(self, text: str) -> list[float]:
        return parse_number_list(text)

    def decode(self, values):
        """The construction action's stated rule from parsed values to the object (identity
        unless the env's prompt states a rule, e.g. Erdős' scale-and-cap)."""
        return values

    def answer_prefix(self, action: str) -> str:
        return self.answer_prefixes.get(action, "")

    def answer_end(self, action: str) -> AnswerEnd:
        """Where an action's answer is complete (harness/env/answers.py): a program at its code
        block's closing fence, a construction at its list's closing bracket or where its run
        of at least `min_len` numbers stops."""
        return answers.CODE_BLOCK if action == "program" else answers.numbers_answer(self.min_len)

    def canonical(self, values) -> str:
        try:
            return json.dumps([float(v) for v in values])
        except (TypeError, ValueError):
            raise ValueError("the sequence must be a flat list of numbers") from None

    def construction_value(self, construction: str):
        """A construction's canonical text -> the value a program gets as `parent_construction`."""
        return json.loads(construction) if construction else None

    def extract(self, completion: str, action: str) -> str:
        """The model's completion -> the solution text to score (raises ValueError)."""
        if action == "program":
            return extract_code(completion)
        return self.canonical(self.decode(self.parse_construction(completion)))

    def construction_of(self, solution: str, action: str, parent_construction: str = ""):
        """The construction a solution stands for (running a program in the sandbox)."""
        if action == "program":
            return self.run_program(solution, parent_construction)[0]
        return self.parse_construction(solution)

    def run_program(self, source: str, parent_construction: str = "") -> tuple[object, str]:
        """Run `run(seed, budget_s)` in the sandbox, with the parent's construction as the
        global `parent_construction`; (the construction it returned, its stdout tail)."""
        if not source.strip():
            raise ValueError("the program is empty")
        limits = sandbox.Limits(wall_s=self.eval_timeout_s)
        res = sandbox.call_python(
            source, "run", {"seed": self.seed, "budget_s": self.eval_timeout_s / 2}, limits,
            {"parent_construction": self.construction_value(parent_construction)})
        if not res.ok:
            raise ValueError(f"program {res.status}: {res.reason}")
        return self.from_program_value(res.value), res.stdout[-STDOUT_TAIL:]

    def from_program_value(self, value) -> list[float]:
        """The value `run()` returned -> the construction (a flat list of numbers here)."""
        if isinstance(value, dict):
            value = next((value[k] for k in self.file_keys if k in value), None)
        if not isinstance(value, list):
            raise ValueError(f"run() must return a list of numbers, got {type(value).__name__}")
        try:
            return [float(v) for v in value]
        except (TypeError, ValueError):
            raise ValueError("run() must return a flat list of numbers") from None

    def export(self, solution: str, action: str) -> tuple[str, str]:
        """(file suffix, file text) of a solution, in the format `harness score` reads."""
        if action == "program":
            return ".py", solution
        return ".json", json.dumps({self.file_keys[0]: json.loads(solution)}) + "\n"

    def load_file(self, text: str, suffix: str) -> tuple[str, str]:
        """A file given to `harness score` -> (solution, action). Programs are .py files;
        constructions are JSON {file_keys[0]: [...]} (or another of `file_keys`), scored
        strictly. A file that cannot be scored raises ValueError saying why (one line)."""
        if suffix == ".py":
            return text, "program"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise EnvError(f"not a .py program and not valid JSON ({err.msg})") from None
        if isinstance(data, dict):
            data = next((data[k] for k in self.file_keys if k in data), None)
        if not isinstance(data, list):
            raise EnvError(f'expected JSON {{"{self.file_keys[0]}": {self.file_example}}}')
        return self.canonical(data), "construction"

    def score(self, solution: str, action: str, parent_construction: str = "") -> EvalResult:
        """Score a solution (program source or construction text); never raises for bad
        input. A program runs with `parent_construction` (the parent state's) as a global."""
        stdout = ""
        try:
            if action == "program":
                values, stdout = self.run_program(solution, parent_construction)
            else:
                values = self.parse_construction(solution)
            self.check_size(values)
            raw_score = float(self.verify(values))
            if not math.isfinite(raw_score):
                raise ValueError(f"score is not finite ({raw_score})")
        except ValueError as err:
            return EvalResult(False, None, 0.0, message(err), solution)
        construction = self.canonical(values) if action == "program" else solution
        return EvalResult(True, raw_score, self.reward(raw_score), "ok", solution,
                          construction=construction, stdout=stdout)

    def check_size(self, values) -> None:
        """ValueError when a construction's length is outside min_len..max_len."""
        if not self.min_len <= len(values) <= self.max_len:
            raise ValueError(f"length {len(values)} outside {self.min_len}..{self.max_len}")

    def score_output(self, output_text: str, case_text: str) -> EvalResult:
        """Score a program's output on one case (`harness score ENV OUTPUT --input CASE`);
        only envs whose programs read a case from stdin (AtCoder) support it."""
        raise EnvError(f"env {self.name} takes no --input case file")

    def final_check(self, solution: str, action: str, parent_construction: str = ""
                    ) -> EvalResult:
        """The end-of-run re-verification of the best state (AtCoder: 150 unseen cases)."""
        return self.score(solution, action, parent_construction)

    def evaluate(self, completion: str, action: str, parent_construction: str = ""
                 ) -> EvalResult:
        """Score a model completion: extract the solution, then score it."""
        try:
            solution = self.extract(completion, action)
        except ValueError as err:
            return EvalResult(False, None, 0.0, message(err), "")
        return self.score(solution, action, parent_construction)

    # --- prompts ---
    def prompt(self, solution: str, raw_score: float | None, action: str, *,
               construction: str = "", history=(), stdout: str = "",
               shown_chars: int | None = None) -> str:
        """The user message asking the model to improve on a state (issue 17 fact 6): the
        statement, the parent (its program, or its construction), its score and its
        ancestors' scores, the best known value, and a program's stdout tail.
        `history`: the ancestors' raw scores, parent first. `shown_chars` shortens the shown
        parent in its middle (never the statement) when the prompt is too long."""
        shown = self.shown_solution(solution, action)
        if shown_chars is not None:
            shown = shorten_middle(shown, shown_chars)
        parent = self.construction_value(construction) \
            if action == "program" and self.has_construction else None
        return self._templates.get_template(f"prompt_{action}.j2").render(
            env=self, solution=shown, raw_score=raw_score, score=format_score(raw_score),
            context=self.prompt_context(raw_score, history, stdout, action),
            parent_size=None if parent is None else len(parent),
            **{"fence": "python", "budget_s": self.eval_timeout_s / 2,
               **self.prompt_vars(solution, action)})

    def shown_solution(self, solution: str, action: str) -> str:
        """The parent as the prompt shows it: a program's source, or the construction
        (number lists downsampled to `prompt_values` and rounded to `prompt_digits`)."""
        if action == "program":
            return solution
        values = self.parse_construction(solution)
        shown, sampled = downsample(values, self.prompt_values)
        note = f" (downsampled from {len(values)} values)" if sampled else ""
        return format_numbers(shown, self.prompt_digits) + note

    def prompt_vars(self, solution: str, action: str) -> dict:
        """Extra template variables of an env's prompt (n_values for number lists; fence and
        budget_s may be overridden)."""
        if action == "program" or not solution:
            return {"n_values": 0}
        return {"n_values": len(self.parse_construction(solution))}

    def prompt_context(self, raw_score: float | None, history, stdout: str,
                       action: str) -> str:
        """The lines every prompt shares, in one place: score history, target, stdout tail."""
        better_word = better(self.direction)
        lines = []
        if raw_score is not None and history:
            chain = [format_score(v) for v in reversed(list(history)) if v is not None]
            chain.append(format_score(raw_score))
            lines.append(f"Score history of this line of solutions (before -> after): "
                         f"{' -> '.join(chain)} (the current one).")
        if self.best_known is not None:
            lines.append(f"The best known {self.objective} is {format_score(self.best_known)} "
                         f"({self.best_known_source}); {better_word} is better. Try to beat it.")
        if action == "program" and stdout.strip():
            lines.append(f"The current program's output (last {STDOUT_TAIL} characters):\n"
                         f"```\n{stdout[-STDOUT_TAIL:].strip()}\n```")
        return "\n".join(lines)


def resolve_action(cfg: Config, env: Env) -> str:
    """`auto` -> construction for the small embedded models (they rarely write working code,
    issue 13), program for any other model; falls back to what the env supports."""
    action = cfg.action
    if action == "auto":
        action = "construction" if cfg.model in EMBEDDED_MODELS else "program"
        if action not in env.actions:
            action = env.actions[0]
    env.check_action(action)
    return action

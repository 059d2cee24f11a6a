"""`AtCoderEnv`: the base of the AtCoder heuristic contest envs (ahc039, ahc058).

A state is a complete contest program (C++17 by default, or Python 3) that reads one case on
stdin and prints an answer. Scoring a candidate runs it on `n_cases` generated cases (seeds
derived from the env seed), in parallel through the sandbox pool, each under the contest's
time limit TL (the contest's times `time_factor`), judged as ALE-bench judges (the benchmark
whose judge the paper used): a CPU limit of ceil(TL + 0.1) + 0.1 s, a wall-clock kill at
ceil(TL + 0.1) + 1.5 s, and TLE when the run's wall time exceeds TL + 0.5 s, so a program
that searches until about TL and then prints is valid. As on AtCoder, a WA, TLE, MLE, RE or
CE on any case makes the candidate invalid, with the verdict and the case in the message. The
first case runs alone (it compiles a C++ program once, and fails fast); the rest run in
parallel and the first failure kills the others.

Raw score: the contest's total over the cases (higher is better). Reward: the mean per-case
score divided by `score_scale`, in `AtCoderEnv.reward` (each env states its scale).
`verify_final` re-scores a program on 150 other cases, as the contest does; the loop calls it
(through `final_check`) on the best program at the end of a run.
`eval_timeout_s` is not used: the per-case limit is the contest's.
Initial states: an empty program with value 0, one per group (the released code's start);
`initial.cpp` is a reference program for `harness score` and benchmarks.
Best known: none is shown. Published contest scores (AHC039: 566,997 for the first human,
567,062 for TTT-Discover, arXiv 2601.16175) are on the contest's own hidden cases, which our
generated cases do not reproduce, so no number here is comparable.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from pathlib import Path

from harness.env import Env, EvalResult
from harness.sandbox.pool import make_pool
from harness.sandbox.runner import Limits, SandboxResult, run_program

FINAL_CASES = 150
TLE_GRACE_S = 0.5  # ALE-bench: TLE only when the wall time exceeds TL + 0.5 s
FINAL_SEED_OFFSET = 1_000_000_000  # final cases never coincide with search cases
_CPP = re.compile(r"^\s*#\s*include\s*[<\"]|\bint\s+main\s*\(", re.MULTILINE)
_VERDICTS = {"timeout": "TLE", "memory": "MLE", "bad_output": "OLE"}


def language_of(source: str) -> str:
    """"cpp" for a C++ program (an #include or `int main(`), else "python"."""
    return "cpp" if _CPP.search(source) else "python"


class CaseFailure(ValueError):
    """A verdict other than AC on one case; the message is the line the user sees."""


class AtCoderEnv(Env):
    """A contest whose candidates are programs run on generated cases. Subclasses set the
    class fields and `generate_case` / `score_case` (the pure generator and scorer)."""

    actions = ("program",)
    direction = "max"
    parallel_inside = True  # cases run in parallel: the loop evaluates candidates one by one
    time_limit_s: float = 2.0        # the contest's limit per case
    memory_mb: int = 2048            # address space (RLIMIT_AS overstates resident memory)
    max_output_bytes: int = 8_000_000
    score_scale: float = 1.0         # reward = mean per-case score / score_scale
    initial_file: str = "initial.cpp"  # a reference program (`initial_solutions`)
    has_construction = False  # a program prints answers to cases; there is no construction

    def __init__(self, eval_timeout_s: float = 10.0, seed: int = 0, n_cases: int = 8,
                 time_factor: float = 1.0, workers: int | None = None,
                 eval_executor: str = "local"):
        super().__init__(eval_timeout_s, seed, eval_executor)
        if n_cases < 1 or time_factor <= 0:
            raise ValueError("n_cases must be >= 1 and time_factor > 0")
        self.n_cases = n_cases
        self.time_factor = time_factor
        self.workers = workers or os.cpu_count() or 1
        self._cases: dict[int, str] = {}

    # --- to override ---
    @staticmethod
    def generate_case(seed: int) -> str:
        raise NotImplementedError

    @staticmethod
    def score_case(input_text: str, output_text: str) -> int:
        raise NotImplementedError

    # --- cases and limits ---
    def case_seeds(self, n: int, final: bool = False) -> list[int]:
        base = (FINAL_SEED_OFFSET if final else 0) + (self.seed % 1_000_000) * 1000
        return [base + i for i in range(n)]

    def case(self, seed: int) -> str:
        if seed not in self._cases:
            self._cases[seed] = self.generate_case(seed)
        return self._cases[seed]

    @property
    def case_time_limit_s(self) -> float:
        """TL: the contest's limit per case, times `time_factor`."""
        return self.time_limit_s * self.time_factor

    @property
    def limits(self) -> Limits:
        """ALE-bench's: CPU ceil(TL + 0.1) + 0.1 s, killed at ceil(TL + 0.1) + 1.5 s of wall."""
        whole = math.ceil(self.case_time_limit_s + 0.1)
        return Limits(wall_s=whole + 1.5, cpu_s=whole + 0.1, memory_mb=self.memory_mb,
                      max_output_bytes=self.max_output_bytes)

    def reward(self, raw_score: float, n_cases: int | None = None) -> float:
        """Mean per-case score over `score_scale` (the raw score is the total over n_cases
        cases)."""
        return raw_score / (n_cases or self.n_cases) / self.score_scale

    # --- scoring ---
    def score(self, solution: str, action: str = "program", parent_construction: str = ""
              ) -> EvalResult:
        self.check_action(action)
        return self.run_cases(solution, self.case_seeds(self.n_cases))

    def verify_final(self, solution: str) -> EvalResult:
        """The contest's final check: 150 cases, none of them seen during search."""
        return self.run_cases(solution, self.case_seeds(FINAL_CASES, final=True))

    def final_check(self, solution: str, action: str, parent_construction: str = ""
                    ) -> EvalResult:
        result = self.verify_final(solution)
        return replace(result, artifacts={**result.artifacts, "cases": FINAL_CASES,
                                          "search_cases": self.n_cases})

    def run_cases(self, source: str, seeds: list[int]) -> EvalResult:
        if not source.strip():
            return EvalResult(False, None, 0.0, "the program is empty", source)
        language = language_of(source)
        inputs = [self.case(s) for s in seeds]

        def run_one(k: int) -> int:
            return self._judge(k, seeds[k], run_program(source, language, inputs[k],
                                                        self.limits), inputs[k])

        try:
            scores = [run_one(0)]  # alone: compiles once, and a broken program fails fast
            if len(seeds) > 1:
                rest = len(seeds) - 1  # on Ray: as many at once as the cluster takes
                workers = rest if self.eval_executor == "ray" else min(self.workers, rest)
                with make_pool(self.eval_executor, workers) as pool:
                    scores += pool.map(run_one, range(1, len(seeds)))
        except CaseFailure as err:
            return EvalResult(False, None, 0.0, str(err), source,
                              {"language": language, "n_cases": len(seeds)})
        raw = float(sum(scores))
        return EvalResult(True, raw, self.reward(raw, len(seeds)), "ok", source,
                          {"language": language, "case_seeds": seeds, "case_scores": scores})

    def _judge(self, k: int, seed: int, result: SandboxResult, input_text: str) -> int:
        where = f"on case {k} (seed {seed})"
        if result.reason.startswith("compile error"):
            raise CaseFailure(f"CE: {result.reason.removeprefix('compile error: ')}")
        if not result.ok:
            verdict = _VERDICTS.get(result.status, "RE")
            raise CaseFailure(f"{verdict} {where}: {result.reason}")
        if result.truncated:
            raise CaseFailure(f"OLE {where}: more than {self.max_output_bytes} bytes of output")
        allowed = self.case_time_limit_s + TLE_GRACE_S
        if result.wall_s > allowed or result.cpu_s > self.limits.cpu_limit_s:
            raise CaseFailure(f"TLE {where}: {result.wall_s:.2f} s of wall time and "
                              f"{result.cpu_s:.2f} s of CPU time; the limit is "
                              f"{self.case_time_limit_s:g} s (+{TLE_GRACE_S:g} s)")
        try:
            return self.score_case(input_text, result.stdout)
        except ValueError as err:
            raise CaseFailure(f"WA {where}: {err}") from None

    def score_output(self, output_text: str, case_text: str) -> EvalResult:
        """One output file on one case file (`harness score ENV OUTPUT --input CASE`)."""
        try:
            raw = float(self.score_case(case_text, output_text))
        except (ValueError, IndexError) as err:  # IndexError: a truncated case file
            return EvalResult(False, None, 0.0, f"WA: {err}", output_text)
        return EvalResult(True, raw, self.reward(raw, 1), "ok", output_text)

    # --- files and prompts ---
    def initial_solutions(self, action: str = "program") -> list[str]:
        self.check_action(action)
        return [Path(self.template_dir(), self.initial_file).read_text()]

    def load_file(self, text: str, suffix: str) -> tuple[str, str]:
        if suffix in (".cpp", ".cc", ".cxx", ".py"):
            return text, "program"
        raise ValueError(f"{self.name} scores a program (.cpp or .py); to score an output "
                         "file, give its case with --input CASE")

    def export(self, solution: str, action: str = "program") -> tuple[str, str]:
        return (".cpp" if language_of(solution) == "cpp" else ".py"), solution

    def prompt_vars(self, solution: str, action: str) -> dict:
        language = language_of(solution) if solution.strip() else "cpp"
        return {"language": language, "fence": "cpp" if language == "cpp" else "python",
                "time_limit_s": self.case_time_limit_s}

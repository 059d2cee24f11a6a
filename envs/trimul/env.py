"""TriMul: a faster forward of AlphaFold3's outgoing triangle multiplicative update on a GPU.

A state is a Python module defining `custom_kernel(data) -> torch.Tensor` (torch and Triton
allowed). Scoring runs `runner.py` in the sandbox, which imports the candidate, checks it on
every TEST_SHAPE and BENCHMARK_SHAPE against the fp32 reference (`reference.py`, tolerances in
`verifier.py`) and times it on the benchmark shapes with CUDA events (what it defends against
is in its docstring). Raw score: the geometric mean over the benchmark shapes of the median
runtime per shape, in µs, lower is better. Reward: 1000 / µs (1 ms scores 1.0), in
`TriMulEnv.reward`. Initial states: an empty program with value 0, one per group (the
released code's start); `initial_candidate.py`, plain torch in fp32, is the reference program.
Best known: 1161.2 µs on an H100, TTT-Discover (arXiv 2601.16175, Table 4; the best human
kernel ran 1371.1 µs there), measured on the GPU MODE leaderboard's shapes and GPU, so a
different GPU gives different numbers.

Without CUDA the env refuses to exist: `TriMulEnv()` raises EnvError with one line, so
`harness score trimul FILE`, `harness discover --env trimul` and experiments stop there. The
class itself imports no torch, so `harness envs` lists it anywhere. `run_candidate` is the
sandboxed runner call without the env; with device="cpu" and timing off it runs the
correctness part on CPU, which is how the tests exercise the runner path without a GPU.

Evaluations run one at a time on the GPU (a lock), so parallel evaluation workers do not time
each other. `eval_timeout_s` below `time_limit_s` (300 s) is raised to it: Triton compiling
and autotuning alone can take a minute. `seed` is not used: the runner draws every input's
seed from the OS, so that nothing can be precomputed (the failing seed is in the message).
"""

from __future__ import annotations

import threading
from pathlib import Path

from envs.trimul.verifier import ATOL, BENCHMARK_SHAPES, RTOL, TEST_SHAPES, shape_name
from harness.base.errors import message
from harness.env import Env, EnvError, EvalResult
from harness.sandbox import runner as sandbox

HERE = Path(__file__).resolve().parent
NO_CUDA = "trimul needs a CUDA GPU; none is available on this machine"
TIME_LIMIT_S = 300.0
# RLIMIT_AS cannot bound a CUDA process: the driver reserves address space for unified memory
# on the scale of host RAM plus all device memory, so CUDA runs get 1 PiB (no limit in effect).
# Host memory is then bounded by the machine, GPU memory by the device.
CUDA_ADDRESS_SPACE_MB = 2**30
CPU_ADDRESS_SPACE_MB = 16384
_GPU_LOCK = threading.Lock()


def sandbox_limits(wall_s: float, device: str) -> sandbox.Limits:
    """torch and Triton start many threads (the pids cgroup counts them) and write their
    caches (compiled kernels of a few MB) into the working directory."""
    memory_mb = CUDA_ADDRESS_SPACE_MB if device.startswith("cuda") else CPU_ADDRESS_SPACE_MB
    return sandbox.Limits(wall_s=wall_s, memory_mb=memory_mb, max_procs=256,
                          max_output_bytes=16_000_000)


def run_candidate(source: str, device: str = "cuda", tests=TEST_SHAPES,
                  benchmarks=BENCHMARK_SHAPES, timing: bool = True,
                  wall_s: float = TIME_LIMIT_S) -> dict:
    """The runner's verdict on `source`, run in the sandbox (see runner.evaluate); ValueError
    with the sandbox's reason when it returned none (timeout, crash, memory)."""
    kwargs = {"candidate_source": source,
              "reference_source": (HERE / "reference.py").read_text(),
              "verifier_source": (HERE / "verifier.py").read_text(),
              "device": device, "tests": list(tests), "benchmarks": list(benchmarks),
              "timing": timing}
    result = sandbox.call_python((HERE / "runner.py").read_text(), "evaluate", kwargs,
                                 sandbox_limits(wall_s, device))
    if not result.ok:
        raise ValueError(f"candidate {result.status}: {result.reason}")
    return result.value


class TriMulEnv(Env):
    name = "trimul"
    title = "TriMul: AlphaFold3's outgoing triangle multiplicative update, forward on a GPU"
    objective = "TriMul runtime (µs, geometric mean)"
    direction = "min"
    actions = ("program",)
    time_limit_s = TIME_LIMIT_S
    has_construction = False
    best_known = 1161.2
    best_known_source = "TTT-Discover on an H100, 2026"
    score_name = "runtime in µs"

    def __init__(self, eval_timeout_s: float = 10.0, seed: int = 0,
                 eval_executor: str = "local"):
        import torch  # here, not at import: `harness envs` lists the class without torch

        if not torch.cuda.is_available():
            raise EnvError(NO_CUDA)
        super().__init__(eval_timeout_s, seed, eval_executor)
        self.wall_s = max(eval_timeout_s, self.time_limit_s)

    @classmethod
    def template_dir(cls) -> Path:
        return HERE  # also for subclasses defined elsewhere

    def reward(self, raw_score: float) -> float:
        """1000 / µs: a 1 ms kernel scores 1.0, twice as fast scores twice as much."""
        return 1000.0 / raw_score

    def score(self, solution: str, action: str = "program", parent_construction: str = ""
              ) -> EvalResult:
        self.check_action(action)
        if not solution.strip():
            return EvalResult(False, None, 0.0, "the program is empty", solution)
        try:
            with _GPU_LOCK:
                verdict = run_candidate(solution, "cuda", wall_s=self.wall_s)
        except ValueError as err:
            return EvalResult(False, None, 0.0, message(err), solution)
        artifacts = {k: verdict[k] for k in ("runtimes_us", "repeats", "overhead_us", "device")}
        if not verdict["valid"]:
            return EvalResult(False, None, 0.0, verdict["message"], solution, artifacts)
        raw_score = float(verdict["geomean_us"])
        return EvalResult(True, raw_score, self.reward(raw_score), "ok", solution, artifacts)

    def initial_solutions(self, action: str = "program") -> list[str]:
        self.check_action(action)
        return [(HERE / "initial_candidate.py").read_text()]

    def load_file(self, text: str, suffix: str) -> tuple[str, str]:
        if suffix != ".py":
            raise ValueError("trimul scores a Python module (.py) defining custom_kernel(data)")
        return text, "program"

    def export(self, solution: str, action: str = "program") -> tuple[str, str]:
        return ".py", solution

    def prompt_vars(self, solution: str, action: str) -> dict:
        return {"time_limit_s": self.wall_s, "rtol": RTOL, "atol": ATOL,
                "benchmarks": [shape_name(s) for s in BENCHMARK_SHAPES]}

"""Speed of the AtCoder envs: scorer time per case and candidate-evaluation time.

Run: python benchmarks/atcoder_scoring.py. Prints, for each scorer, the median milliseconds
per case (ahc039 on the initial program's rectangle and on a 1000-vertex staircase, the
worst case of the O(m^2) self-intersection check; ahc058 on the initial greedy's plan), the
time to generate one case, and the env's time to evaluate its initial program on 8 cases
(compiled binary cached, cases generated once per env, as in the loop).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from harness.env import make_env


def median_ms(fn, calls: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def staircase_output(steps: int = 499, step: int = 200) -> str:
    """A valid 1000-vertex staircase polygon with perimeter 4 * steps * step."""
    vertices = [(0, 0)]
    for k in range(steps):
        vertices += [((k + 1) * step, k * step), ((k + 1) * step, (k + 1) * step)]
    vertices.append((0, steps * step))
    return f"{len(vertices)}\n" + "".join(f"{x} {y}\n" for x, y in vertices)


def initial_output(env, case: str) -> str:
    """The initial program's answer on one case, compiled and run outside the sandbox."""
    with tempfile.TemporaryDirectory() as tmp:
        source, binary = Path(tmp, "main.cpp"), Path(tmp, "main")
        source.write_text(env.initial_solutions("program")[0])
        subprocess.run(["g++", "-O2", "-std=c++17", str(source), "-o", str(binary)], check=True)
        return subprocess.run([str(binary)], input=case, capture_output=True, text=True,
                              check=True).stdout


def bench_env(name: str) -> None:
    env = make_env(name, n_cases=8)
    case = env.generate_case(0)
    outputs = [("initial program", initial_output(env, case))]
    if name == "ahc039":
        outputs.append(("1000-vertex staircase", staircase_output()))
    for label, output in outputs:
        ms = median_ms(lambda out=output: env.score_case(case, out), 51)
        print(f"{name + ' score_case, ' + label:44s} {51:6d} {ms:10.2f}")
    ms = median_ms(lambda: env.generate_case(1), 11)
    print(f"{name + ' generate_case':44s} {11:6d} {ms:10.2f}")
    program = env.initial_solutions("program")[0]
    first = time.perf_counter()
    result = env.score(program, "program")  # compiles (unless cached), generates the cases
    first_ms = (time.perf_counter() - first) * 1e3
    assert result.valid, result.message
    print(f"{name + ' evaluate initial, 8 cases, first call':44s} {1:6d} {first_ms:10.0f}")
    ms = median_ms(lambda: env.score(program, "program"), 5)
    print(f"{name + ' evaluate initial, 8 cases':44s} {5:6d} {ms:10.0f}")


def main() -> None:
    print(f"{'what':44s} {'calls':>6s} {'median ms':>10s}")
    for name in ("ahc039", "ahc058"):
        bench_env(name)


if __name__ == "__main__":
    main()

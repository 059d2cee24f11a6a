"""The discovery benchmark's CI-sized preset runs every arm, and a rerun adds seeds only."""

import importlib.util
import math
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("one_torch_thread")
def test_discovery_benchmark_quick_preset_and_resume(tmp_path, capsys):
    bench = load("embedded_discovery")
    args = ["--quick", "--model", "tiny", "--out", str(tmp_path)]
    results = tmp_path / "RESULTS.md"
    first = bench.main([*args, "--envs", "erdos,ac1", "--seeds", "1", "--results", str(results)])
    assert sorted(first.arm) == sorted(["best_of_n", "full", "no_training"] * 2)
    assert sorted(set(first.env)) == ["ac1", "erdos"]
    assert all(math.isfinite(v) and v > 0 for v in first.best)
    assert all(w > 0 for w in first.wall_s)
    text = results.read_text()
    assert "## erdos" in text and "## ac1" in text and "--results" in text
    more = bench.main([*args, "--envs", "erdos", "--seeds", "2"])  # seed 0 resumes as finished
    assert len(more) == 6
    erdos = first[first.env == "erdos"].set_index("arm").best
    assert more[more.seed == 0].set_index("arm").best.to_dict() == erdos.to_dict()
    out = capsys.readouterr().out
    assert "best mean ± 95% CI" in out and "vs best_of_n" in out


@pytest.mark.usefixtures("one_torch_thread")
def test_cpu_sampling_benchmark_prints_each_backend_against_generate(capsys, monkeypatch):
    import sys

    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports loop_throughput
    bench = load("cpu_sampling")
    monkeypatch.setattr(sys, "argv", ["cpu_sampling.py", "--model", "tiny", "--group", "2",
                                      "--new-tokens", "8", "--repeats", "1"])
    bench.main()
    out = capsys.readouterr().out
    for label in ("generate, adapters off", "shared prompt, stop at answer", "bf16 linears"):
        [line] = [ln for ln in out.splitlines() if label in ln[:45]]
        seconds, ratio = map(float, line[45:].split()[:2])
        assert seconds > 0 and ratio > 0


@pytest.mark.usefixtures("one_torch_thread")
def test_step_time_benchmark_times_the_main_job_before_and_after(capsys):
    bench = load("step_time")
    tables = bench.main(["--model", "tiny", "--repeats", "1", "--steps", "1",
                         "--max-new-tokens", "8"])
    assert set(tables) == {"before issue 19", "now"}
    for df in tables.values():
        assert len(df) == 1 and (df["time/step_s"] > 0).all()
    out = capsys.readouterr().out
    assert "step time, before / now:" in out and "tokens/rollout" in out

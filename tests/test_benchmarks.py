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
    first = bench.main([*args, "--seeds", "1"])
    assert sorted(first.arm) == ["best_of_n", "full", "no_ttt"]
    assert all(math.isfinite(v) and v > 0 for v in first.best_c5)
    assert all(w > 0 for w in first.wall_s)
    more = bench.main([*args, "--seeds", "2"])  # seed 0 resumes as finished; seed 1 runs
    assert len(more) == 6
    again = more[more.seed == 0].set_index("arm").best_c5
    assert again.to_dict() == first.set_index("arm").best_c5.to_dict()
    assert "best C5 mean ± 95% CI" in capsys.readouterr().out

"""Experiment folders written before the package took its layers (issue 20) still work.

tests/fixtures/pre_layers/ holds two folders made by commit bd16b36 (`harness experiment
... --budget smoke --model tiny`; adapters, checkpoints and figures left out): a tuning of
kl_target, and the reuse ablation, whose plan sets the start-state rule under its old key
`sampler`. Their experiment.py imports `harness.experiment.run_experiment`, as every old
script does.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.lab.report import write_report

FIXTURES = Path(__file__).parent / "fixtures" / "pre_layers"
FOLDERS = sorted(p.name for p in FIXTURES.iterdir() if (p / "plan.json").exists())


@pytest.fixture(params=FOLDERS)
def old_folder(request, tmp_path):
    folder = tmp_path / "reports" / request.param
    shutil.copytree(FIXTURES / request.param, folder)
    return folder


def test_there_are_two_old_folders():
    assert len(FOLDERS) == 2


def test_an_old_folder_re_renders_its_report_unchanged(old_folder):
    """Unchanged but for the renamed key: `sampler=none` reads `reuse=none` now."""
    before = (old_folder / "report.md").read_text()
    write_report(old_folder)
    assert (old_folder / "report.md").read_text() == before.replace("sampler=", "reuse=")
    assert sorted(p.name for p in (old_folder / "figures").glob("*.png"))


@pytest.fixture
def old_ablation(tmp_path):
    """The reuse ablation: its plan and script still say `sampler` (the key is `reuse` now)."""
    [name] = [n for n in FOLDERS if "ablate-reuse" in n]
    folder = tmp_path / "reports" / name
    shutil.copytree(FIXTURES / name, folder)
    return folder


@pytest.mark.slow
def test_an_old_folder_resumes_through_its_own_script(old_ablation):
    """One arm's results are removed; the folder's own experiment.py runs that arm again,
    leaves the others as they were, and re-renders the report."""
    old_folder = old_ablation
    steps = pd.read_csv(old_folder / "data" / "steps.csv", dtype={"arm": str})
    arm = steps["arm"].iloc[-1]
    kept = steps[steps["arm"] != arm].reset_index(drop=True)
    shutil.rmtree(old_folder / "data" / "shards" / f"{arm}-s0")
    for f in (old_folder / "best").glob(f"{arm}-s0*"):
        f.unlink()
    done = subprocess.run([sys.executable, "experiment.py"], cwd=old_folder, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    after = pd.read_csv(old_folder / "data" / "steps.csv", dtype={"arm": str})
    assert sorted(after["arm"].unique()) == sorted(steps["arm"].unique())
    assert len(after[after["arm"] == arm]) == len(steps[steps["arm"] == arm])
    pd.testing.assert_frame_equal(after[after["arm"] != arm].reset_index(drop=True), kept)
    assert (old_folder / "best" / f"{arm}-s0.score.json").exists()
    assert "complete" in (old_folder / "report.md").read_text()

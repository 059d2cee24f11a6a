"""Sweeps: a real 3-experiment sweep (tiny model, smoke budget, toy env) killed with SIGKILL
during its second experiment and resumed; the loop's decisions (stop at N, time budget,
failures, one writer) on a stand-in experiment runner that records CSVs from a known score;
the digest and the ledger; `harness sweep` bad input."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.base import records
from harness.cli import main
from harness.lab.plan import validate_plan
from harness.lab.report import write_report
from harness.lab.sweep import run_sweep, start_sweep
from harness.lab.sweep_state import LOCK_FILE, STATE_FILE, SweepError, load_state, write_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


def state_of(root):
    return load_state(root)


def rows_of(steps, arm, seed):
    return steps[(steps["arm"] == arm) & (steps["seed"] == seed)].reset_index(drop=True)


# --- the real thing: SIGKILL during the second experiment, then --resume ---
def test_a_sweep_killed_during_its_second_experiment_resumes_without_repeating_work(tmp_path):
    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env |= {"HARNESS_REPORTS_DIR": str(reports), "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "harness", "sweep", "run toy", "--experiments", "3",
           "--hours", "1", "--reviewer", "offline", "--budget", "smoke", "--model", "tiny",
           "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if list(reports.glob("*-sweep-run-toy/02-*/best/*.score.json")):
            break  # the second experiment is under way: one of its runs has finished
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[0]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    [root] = list(reports.glob("*-sweep-run-toy"))
    killed = state_of(root)
    assert [e.status for e in killed.experiments] == ["done", "running"]
    assert killed.experiments[1].pid == proc.pid and killed.experiments[1].heartbeat
    first, second = (root / e.folder for e in killed.experiments)
    before = {p: p.read_bytes() for p in (first / "data" / "steps.csv", first / "review.json")}
    finished_before = {p.name for p in (second / "best").glob("*.score.json")}
    steps_before = {}  # each run's own shard: the merged CSV may lag a job that just ended
    for name in finished_before:
        arm, seed = name.removesuffix(".score.json").rsplit("-s", 1)
        steps_before[name] = pd.read_csv(records.shard_dir(second, arm, int(seed)) / "steps.csv")

    result = run("sweep", "--resume", str(root), "--quiet")
    assert result.exit_code == 0, result.output
    state = state_of(root)
    assert state.status == "finished" and state.stop_reason == "3 experiment(s) run"
    assert [e.index for e in state.experiments] == [1, 2, 3]
    assert [e.status for e in state.experiments] == ["done"] * 3
    assert [e.attempts for e in state.experiments] == [1, 2, 1]
    assert sorted(p.name for p in root.glob("0*")) == [e.folder for e in state.experiments]
    for path, data in before.items():  # the finished experiment was not touched
        assert path.read_bytes() == data
    for entry in state.experiments:  # every arm x seed ran exactly once, every step once
        folder = root / entry.folder
        plan = validate_plan(json.loads((folder / "plan.json").read_text()))
        steps = pd.read_csv(folder / "data" / "steps.csv")
        assert not steps.duplicated(["arm", "seed", "step"]).any()
        assert len(steps) == len(plan.arms) * len(plan.seeds) * plan.settings["steps"]
        rollouts = pd.read_csv(folder / "data" / "rollouts.csv")
        assert set(rollouts.groupby(["arm", "seed", "step"]).size()) == {4}
        buffer = pd.read_csv(folder / "data" / "buffer.csv")
        assert not buffer.duplicated(["arm", "seed", "id"]).any()
        assert (folder / "review.json").exists() and entry.ledger.tokens > 0
    after = pd.read_csv(second / "data" / "steps.csv")
    for name in finished_before:  # runs finished before the kill were not redone
        arm, seed = name.removesuffix(".score.json").rsplit("-s", 1)
        pd.testing.assert_frame_equal(rows_of(after, arm, int(seed)),
                                      rows_of(steps_before[name], arm, int(seed)))
    digest = (root / "SWEEP.md").read_text()
    assert "**Status: finished: 3 experiment(s) run.**" in digest
    assert all(f"| [{e.folder}]({e.folder}/report.md) |" in digest for e in state.experiments)


# --- the loop's decisions, on a stand-in runner that records CSVs from a known score ---
def known_score(cfg) -> float:
    """Distinct letters (toy, higher is better) peaking at kl_target = 0.5 and c_puct = 2."""
    return 20 - 3 * abs(math.log2(cfg.kl_target / 0.5)) - abs(math.log2(cfg.c_puct / 2))


def recorded_run(folder, progress=False):
    """Stands in for run_experiment: the CSVs a run would append, then the report."""
    plan = validate_plan(json.loads((Path(folder) / "plan.json").read_text()))
    steps = records.CsvLog(folder / "data" / "steps.csv", records.STEP_COLUMNS)
    rollouts = records.CsvLog(folder / "data" / "rollouts.csv", records.ROLLOUT_COLUMNS)
    for arm in plan.arms:
        for seed in plan.seeds:
            cfg = plan.config(arm.name, seed)
            final = known_score(cfg) + 0.01 * seed
            for step in range(cfg.steps):
                steps.append([{"arm": arm.name, "seed": seed, "step": step,
                               "score/best": final - (cfg.steps - 1 - step), "valid_frac": 1.0,
                               "tokens/generated": 10, "time/step_s": 0.1}])
                rollouts.append([{"arm": arm.name, "seed": seed, "step": step, "reward": 0.5,
                                  "valid": True, "message": "ok", "tokens": 2}
                                 ] * cfg.rollouts_per_step)
    return write_report(folder)


def new_sweep(reports, experiments=3, hours=1.0):
    return start_sweep("run toy", root=reports, experiments=experiments, hours=hours,
                       reviewer="offline", budget="smoke", model="tiny")


def test_a_sweep_runs_n_experiments_each_from_the_last_review(reports_in_tmp):
    root = new_sweep(reports_in_tmp)
    assert root.parent == reports_in_tmp and root.name[16:] == "-sweep-run-toy"
    digest = run_sweep(root, run=recorded_run, progress=False, heartbeat_s=0.05)
    state = state_of(root)
    assert state.status == "finished" and len(state.experiments) == 3
    assert [e.source for e in state.experiments] == [
        "planner", "review of 01-run-toy", f"review of {state.experiments[1].folder}"]
    second = json.loads((root / state.experiments[1].folder / "plan.json").read_text())
    assert second["planner"] == "reviewer offline after 01-run-toy"
    assert [a["overrides"]["kl_target"] for a in second["arms"]] == [0.3466, 0.6931, 1.04]
    third = json.loads((root / state.experiments[2].folder / "plan.json").read_text())
    assert len(third["seeds"]) == 2  # n = 1 is within noise: more seeds
    text = digest.read_text()
    assert "**new best**" in text and "kl_target ∈ {0.3466, 0.6931, 1.04}" in text
    assert "## Best configuration" in text and "--set kl_target=0.6931" in text
    assert "![Best score across experiments](figures/best_across_experiments.png)" in text
    assert (root / "figures" / "best_across_experiments.png").exists()
    assert "Tried:" in text and "Learned:" in text and "Dead ends:" in text
    ledger = pd.read_csv(root / "ledger.csv")
    assert ledger["index"].tolist() == ["1", "2", "3", "total"]
    assert ledger["tokens"].iloc[-1] == ledger["tokens"].iloc[:-1].sum() > 0
    assert all(e.ledger.wall_s > 0 and e.heartbeat for e in state.experiments)
    assert state.time_used_s >= sum(e.ledger.wall_s for e in state.experiments)


def test_a_failing_experiment_is_recorded_and_the_sweep_goes_on(reports_in_tmp):
    def flaky(folder, progress=False):
        if folder.name.startswith("02-"):
            raise RuntimeError("boom\nsecond line")
        return recorded_run(folder)

    root = new_sweep(reports_in_tmp)
    run_sweep(root, run=flaky, progress=False)
    one, two, three = state_of(root).experiments
    assert (two.status, two.error) == ("failed", "RuntimeError: boom")
    assert "Traceback" in (root / two.folder / "error.txt").read_text()
    assert three.status == "done" and three.source == f"review of {two.folder}"
    review = json.loads((root / two.folder / "review.json").read_text())
    assert f"failed (RuntimeError: boom); building on {one.folder}" in \
        review["proposal"]["summary"]
    assert "c_puct" in review["proposal"]["title"]  # kl_target was tried (and failed)
    assert "failed (RuntimeError: boom); its arms are not retried" in \
        (root / "SWEEP.md").read_text()


def test_no_experiment_starts_that_would_not_fit_the_time_left(reports_in_tmp):
    with pytest.raises(SweepError, match="the first experiment needs about"):
        new_sweep(reports_in_tmp, hours=1e-4)
    assert not reports_in_tmp.exists() or not list(reports_in_tmp.iterdir())
    root = new_sweep(reports_in_tmp, experiments=1)
    run_sweep(root, run=recorded_run, progress=False)
    state = state_of(root)
    assert state.stop_reason == "1 experiment(s) run"
    stamp = json.loads((root / "01-run-toy" / "review.json").read_text())["created"]
    state.time_used_s = 3600 - 30  # 30 s left; the sweep measured 10 s per rollout
    state.experiments[0].ledger.wall_s = 10.0 * state.experiments[0].ledger.rollouts
    write_state(root, state)
    run_sweep(root, run=recorded_run, progress=False, experiments=3)  # extend it
    state = state_of(root)
    assert state.status == "finished" and len(state.experiments) == 1
    assert re.fullmatch(r"the next experiment needs about 4\.0 min and 0\.\d min are left",
                        state.stop_reason)
    assert json.loads((root / "01-run-toy" / "review.json").read_text())["created"] == stamp


def test_the_state_file_has_one_writer_and_is_replaced_atomically(reports_in_tmp):
    from filelock import FileLock

    root = new_sweep(reports_in_tmp)
    with FileLock(str(root / LOCK_FILE)):
        with pytest.raises(SweepError, match="is being run by another process"):
            run_sweep(root, run=recorded_run, progress=False)
    state = state_of(root)
    write_state(root, state)
    assert state_of(root) == state and [p.name for p in root.glob(".*tmp")] == []
    assert json.loads((root / STATE_FILE).read_text())["experiments"][0]["status"] == "pending"


@pytest.mark.parametrize("args, message", [
    ([], "give a REQUEST for a new sweep or --resume DIR"),
    (["run toy", "--resume", "x"], "not both"),
    (["--resume", "/no/such/sweep"], "is not a sweep folder (no sweep.json)"),
    (["make it better", "--reviewer", "offline", "--model", "tiny"], "cannot plan"),
    (["run toy", "--model", "nonsense", "--reviewer", "offline"], "unknown model"),
])
def test_bad_sweep_input_gives_one_line_and_no_folder(reports_in_tmp, args, message):
    result = run("sweep", *args)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert message in result.output and not reports_in_tmp.exists()

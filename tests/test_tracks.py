"""Parallel research tracks: two tracks of one question run as real tiny sweeps in two
processes and go different ways; two requests make two tracks; a tracks root resumes only its
unfinished tracks; Ctrl-C stops every track, cancels the queued ones and re-raises; a track
that raises is recorded while the other goes on; bad input is one line and leaves no folder.
The fast tests use test_sweep's stand-in experiment runner (it travels to the track
processes by reference, as `test_sweep.recorded_run`)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from procs import started
from test_sweep import recorded_run

from harness.lab.folders import reports_root_of
from harness.lab.offline_reviewer import tuned_keys
from harness.lab.plan import PlanError
from harness.lab.sweep import run_sweep
from harness.lab.sweep_state import SweepError, load_state
from harness.lab.tracks import (
    DIGEST,
    TRACKS_FILE,
    is_tracks_root,
    load_tracks,
    run_tracks,
    start_tracks,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the track processes share 2 cores


def new_tracks(reports, requests=("run toy",), tracks=1, experiments=2, hours=1.0):
    return start_tracks(list(requests), root=reports, tracks=tracks, experiments=experiments,
                        hours=hours, reviewer="offline", budget="smoke", model="tiny")


def plan_of(folder):
    return json.loads((folder / "plan.json").read_text())


def states(root):
    return [load_state(root / t.folder) for t in load_tracks(root)]


# --- the real thing: two tiny sweeps in two processes ---
def test_two_tracks_of_one_question_run_side_by_side_and_go_different_ways(reports_in_tmp):
    root = new_tracks(reports_in_tmp, tracks=2)
    assert is_tracks_root(root) and root.name[16:] == "-tracks-run-toy"
    assert [(t.index, t.folder, t.request) for t in load_tracks(root)] == [
        (1, "track-1-run-toy", "run toy"), (2, "track-2-run-toy", "run toy")]

    digest = run_tracks(root, progress=False)

    one, two = states(root)
    for k, state in enumerate((one, two), 1):
        assert (state.track, state.tracks, state.status) == (k, 2, "finished")
        assert [e.status for e in state.experiments] == ["done", "done"]
        folder = root / f"track-{k}-run-toy"
        assert (folder / "SWEEP.md").exists() and (folder / "ledger.csv").exists()
        for entry in state.experiments:  # each track has its own reviews (its memory)
            assert (folder / entry.folder / "review.json").exists()
            assert pd.read_csv(folder / entry.folder / "data" / "summary.csv")["n"].sum() > 0
    pids = {e.pid for s in (one, two) for e in s.experiments}
    assert len(pids) == 2 and os.getpid() not in pids  # one process per track
    first = [s.experiments[0] for s in (one, two)]
    assert first[0].started <= first[1].ended and first[1].started <= first[0].ended

    # the same first plan on each track's own seeds, then different directions
    firsts = [plan_of(root / f"track-{k}-run-toy" / "01-run-toy") for k in (1, 2)]
    assert [p["seeds"] for p in firsts] == [[0], [1]]
    assert firsts[0]["arms"] == firsts[1]["arms"]
    seconds = [plan_of(root / f"track-{k}-run-toy" / s.experiments[1].folder)
               for k, s in ((1, one), (2, two))]
    assert tuned_keys(seconds[0]) != tuned_keys(seconds[1])
    assert "Track 2 of 2" in json.loads(
        (root / "track-2-run-toy" / "01-run-toy" / "review.json").read_text()
    )["proposal"]["rationale"]

    table = pd.read_csv(root / "tracks.csv")
    assert table["track"].tolist() == [1, 2] and set(table["request"]) == {"run toy"}
    assert table["status"].tolist() == ["finished"] * 2
    assert table["experiments"].tolist() == [2, 2] and table["best_score"].notna().all()
    assert set(table["direction"]) == {"max"} and set(table["env"]) == {"toy"}
    for row in table.itertuples():
        assert (root / row.folder / row.best_experiment / "plan.json").exists()
        assert row.best_arm in {a["name"] for a in
                                plan_of(root / row.folder / row.best_experiment)["arms"]}
    assert (root / "figures" / "tracks_best.png").stat().st_size > 0
    text = digest.read_text()
    assert digest.name == DIGEST and "**Status: finished: all 2 tracks.**" in text
    assert "![Best score so far per track](figures/tracks_best.png)" in text
    assert "[run toy](track-1-run-toy/SWEEP.md)" in text and "## Best across tracks" in text
    # a track's experiments belong to the reports root (findings ledger, references)
    assert reports_root_of(root / "track-1-run-toy" / "01-run-toy") == reports_in_tmp


# --- the fast ones: test_sweep's stand-in runner ---
def test_two_requests_make_two_tracks_one_each(reports_in_tmp):
    root = new_tracks(reports_in_tmp, ["run toy", "tune c_puct on toy"])
    assert root.name[16:] == "-tracks-run-toy-and-1-more"
    assert [(t.folder, t.request) for t in load_tracks(root)] == [
        ("track-1-run-toy", "run toy"), ("track-2-tune-c-puct-on-toy", "tune c_puct on toy")]
    assert [(s.track, s.tracks, s.request) for s in states(root)] == [
        (1, 2, "run toy"), (2, 2, "tune c_puct on toy")]
    assert plan_of(root / "track-2-tune-c-puct-on-toy" / "01-tune-c-puct-on-toy")["seeds"] == [0]

    run_tracks(root, run=recorded_run, progress=False, max_parallel=1)
    table = pd.read_csv(root / "tracks.csv")
    assert table["request"].tolist() == ["run toy", "tune c_puct on toy"]
    assert table["status"].tolist() == ["finished"] * 2
    assert table["best_arm"].notna().all()


def test_resuming_a_tracks_root_continues_only_the_unfinished_track(reports_in_tmp):
    def interrupted(folder, progress=False):
        if folder.name.startswith("02-"):
            raise KeyboardInterrupt
        return recorded_run(folder)

    root = new_tracks(reports_in_tmp, tracks=2)
    run_sweep(root / "track-1-run-toy", run=recorded_run, progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(root / "track-2-run-toy", run=interrupted, progress=False)
    finished = (root / "track-1-run-toy" / "sweep.json").read_bytes()
    assert [e.status for e in states(root)[1].experiments] == ["done", "running"]

    run_tracks(root, run=recorded_run, progress=False)
    assert (root / "track-1-run-toy" / "sweep.json").read_bytes() == finished
    two = states(root)[1]
    assert two.status == "finished" and [e.attempts for e in two.experiments] == [1, 2]
    assert pd.read_csv(root / "tracks.csv")["status"].tolist() == ["finished"] * 2


def slow_run(folder, progress=False):
    """An experiment that takes a minute (the Ctrl-C test interrupts it)."""
    time.sleep(60)


def test_ctrl_c_stops_every_track_cancels_the_queued_ones_and_re_raises(reports_in_tmp):
    from filelock import FileLock

    root = new_tracks(reports_in_tmp, tracks=3)
    code = ("import sys; from test_tracks import slow_run; from harness.lab.tracks import "
            "run_tracks; run_tracks(sys.argv[1], run=slow_run, max_parallel=2)")
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parent)}
    with started([sys.executable, "-c", code, str(root)], env=env, text=True,  # its own
                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:  # group, a job's
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not all(
                s.experiments[0].status == "running" for s in states(root)[:2]):
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0 and "KeyboardInterrupt" in out, out
    assert "[tracks] track 1 started" in out and "track 3 started" not in out
    one, two, three = states(root)
    assert [e.status for e in one.experiments + two.experiments] == ["running"] * 2
    assert three.experiments[0].attempts == 0  # queued, cancelled: never started
    assert [t.error for t in load_tracks(root)] == ["", "", ""]
    for k in (1, 2, 3):  # no process holds a track any more
        with FileLock(str(root / f"track-{k}-run-toy" / "sweep.lock"), timeout=0):
            pass
    assert "**Status: 0 of 3 tracks finished" in (root / DIGEST).read_text()


def test_a_track_that_raises_is_recorded_and_the_other_goes_on(reports_in_tmp):
    from filelock import FileLock

    root = new_tracks(reports_in_tmp, tracks=2)
    with FileLock(str(root / "track-2-run-toy" / "sweep.lock")):  # someone else runs it
        run_tracks(root, run=recorded_run, progress=False)
    one, two = states(root)
    assert one.status == "finished" and two.status == "running"
    error = load_tracks(root)[1].error
    assert error.startswith("SweepError: ") and "is being run by another process" in error
    table = pd.read_csv(root / "tracks.csv")
    assert table["status"].tolist() == ["finished", "failed"]
    assert "is being run by another process" in (root / DIGEST).read_text()

    run_tracks(root, run=recorded_run, progress=False)  # resume: only track 2 runs
    assert states(root)[1].status == "finished" and load_tracks(root)[1].error == ""


@pytest.mark.parametrize("requests, kwargs, error, message", [
    ([], {}, SweepError, "give a REQUEST"),
    (["run toy"], {"tracks": 0}, SweepError, "--tracks must be >= 1"),
    (["run toy", "run toy"], {"tracks": 3}, SweepError, "2 requests make 2 tracks"),
    (["run toy", "make it better"], {}, PlanError, "cannot plan"),
    (["run toy"], {"tracks": 2, "hours": 1e-4}, SweepError, "the first experiment needs"),
])
def test_bad_input_is_one_line_before_any_folder(reports_in_tmp, requests, kwargs, error,
                                                 message):
    with pytest.raises(error, match=message) as caught:
        new_tracks(reports_in_tmp, requests, **kwargs)
    assert len(str(caught.value).splitlines()) == 1 and not reports_in_tmp.exists()


def test_only_a_tracks_folder_runs_as_tracks_and_one_process_at_a_time(reports_in_tmp):
    from filelock import FileLock

    root = new_tracks(reports_in_tmp)
    sweep = root / "track-1-run-toy"
    assert not is_tracks_root(sweep) and (root / TRACKS_FILE).exists()
    with pytest.raises(SweepError, match="is not a tracks folder"):
        run_tracks(sweep)
    with FileLock(str(root / "tracks.lock")):
        with pytest.raises(SweepError, match="is being run by another process"):
            run_tracks(root, run=recorded_run)
    with pytest.raises(SweepError, match="max_parallel"):
        run_tracks(root, max_parallel=0)


# --- the command line ---
def test_cli_runs_several_requests_as_tracks_and_resumes_the_root(reports_in_tmp):
    from click.testing import CliRunner

    from harness.cli import main

    args = ["sweep", "run toy", "tune c_puct on toy", "--experiments", "1", "--hours", "1",
            "--reviewer", "offline", "--budget", "smoke", "--model", "tiny", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    root = Path(result.output.strip().splitlines()[-1])
    assert is_tracks_root(root) and (root / DIGEST).exists()
    assert [s.status for s in states(root)] == ["finished"] * 2
    again = CliRunner().invoke(main, ["sweep", "--resume", str(root), "--quiet"])
    assert again.exit_code == 0, again.output  # nothing left to do: a no-op, not an error
    bad = CliRunner().invoke(main, [*args[:3], "--tracks", "3"])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1

"""Executors: the same experiment folder whichever engine ran its jobs.

Ray runs for real (never mocked), inside a private network namespace that has only loopback
(`unshare --net`, `lo` up), so no Ray traffic can leave the machine. SLURM runs through
submitit's local executor: the same code path, minus `sbatch`.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
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
from harness.lab.executors import ExecutorSpec, run_jobs
from harness.lab.experiment import JobsFailed, create_experiment, run_experiment

REQUEST = "compare default vs best_of_n on toy"
TIMING = ["time/select_s", "time/sample_s", "time/eval_s", "time/train_s", "time/step_s",
          "rollouts_per_s"]


def run(*args):
    return CliRunner().invoke(main, list(args))


def private_net_reason() -> str:
    """Why Ray tests cannot run in a loopback-only namespace here ('' when they can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs util-linux unshare and iproute2 ip"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install 'harness[cluster]')"
    done = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"],
                          capture_output=True)
    return "" if done.returncode == 0 else "cannot make a network namespace (needs root)"


needs_private_net = pytest.mark.skipif(bool(private_net_reason()), reason=private_net_reason())


def in_private_net(args: list[str], reports: Path, **kwargs) -> subprocess.Popen:
    """Start `args` in a new network namespace whose only interface is loopback."""
    env = {**os.environ, "HARNESS_REPORTS_DIR": str(reports), "RAY_USAGE_STATS_ENABLED": "0",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"',
                             "sh", *args], env=env, text=True, **kwargs)


def make_folder(root: Path, steps: int | None = None, max_new_tokens: int | None = None):
    folder = create_experiment(REQUEST, root=root, budget="smoke", model="tiny",
                               planner="offline")
    plan = json.loads((folder / "plan.json").read_text())
    if steps:
        plan["settings"]["steps"] = steps
    if max_new_tokens:
        plan["settings"]["max_new_tokens"] = max_new_tokens
    (folder / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    return folder


def run_keys(folder: Path) -> list[tuple]:
    steps = pd.read_csv(folder / "data" / "steps.csv")
    return list(zip(steps["arm"], steps["seed"], steps["step"], strict=True))


def assert_same_results(a: Path, b: Path) -> None:
    """Same files, columns, (arm, seed, step) rows and numbers (timings aside)."""
    def files(folder):
        skip = {"config.json", "code.diff", "experiment.py"}
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                      if p.is_file() and p.name not in skip and not p.name.endswith(".png")
                      and not {"shards", "slurm", "checkpoints"} & set(p.relative_to(folder).parts))

    assert files(a) == files(b)
    for name in ("steps.csv", "rollouts.csv", "buffer.csv"):
        x, y = pd.read_csv(a / "data" / name), pd.read_csv(b / "data" / name)
        assert list(x.columns) == list(y.columns)
        pd.testing.assert_frame_equal(x.drop(columns=TIMING, errors="ignore"),
                                      y.drop(columns=TIMING, errors="ignore"))
    for path in sorted((a / "best").iterdir()):
        assert path.read_text() == (b / "best" / path.name).read_text()
    assert len(run_keys(a)) == len(set(run_keys(a)))


# --- shards ---
def test_merge_shards_joins_runs_in_plan_order_byte_for_byte(tmp_path):
    rows = {("b", 0): [["b", 0, 0, 'a "quoted",\nmulti-line text']],
            ("a", 1): [["a", 1, 0, "x"], ["a", 1, 1, "y"]]}
    for (arm, seed), body in rows.items():
        path = records.shard_dir(tmp_path, arm, seed) / "rollouts.csv"
        path.parent.mkdir(parents=True)
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([["arm", "seed", "step", "text"], *body])
    records.merge_shards(tmp_path, [("a", 1), ("b", 0), ("c", 0)])  # c has no shard yet
    with (tmp_path / "data" / "rollouts.csv").open(newline="") as f:
        merged = list(csv.reader(f))
    assert merged[0] == records.ROLLOUT_COLUMNS
    assert merged[1:] == [["a", "1", "0", "x"], ["a", "1", "1", "y"],
                          ["b", "0", "0", 'a "quoted",\nmulti-line text']]
    assert (tmp_path / "data" / "steps.csv").read_text().startswith("arm,seed,step,")


def test_a_folder_from_before_shards_is_split_and_resumes_unchanged(tmp_path, one_torch_thread):
    folder = make_folder(tmp_path)
    run_experiment(folder, progress=False)
    before = {n: (folder / "data" / n).read_bytes() for n in records.SHARDED}
    shutil.rmtree(folder / "data" / "shards")  # what an older version left behind
    run_experiment(folder, progress=False)     # nothing to run: split, merge, report
    assert {n: (folder / "data" / n).read_bytes() for n in records.SHARDED} == before
    assert sorted(p.name for p in (folder / "data" / "shards").iterdir()) == [
        "best_of_n-s0", "full-s0"]


# --- local ---
def test_a_failing_job_is_retried_then_named_and_the_others_finish(tmp_path, monkeypatch):
    from harness.lab import executors

    calls = []

    def flaky(folder, plan, arm, seed, progress=False):
        calls.append(arm)
        if arm == "bad":
            raise RuntimeError("the node caught fire\nsecond line")
        return {"arm": arm, "seed": seed, "best": 1.0}

    monkeypatch.setattr(executors, "run_job", flaky)
    done = []
    failures = run_jobs(ExecutorSpec("local", job_retries=2), tmp_path, {},
                        [("good", 0), ("bad", 0), ("also", 0)], progress=False,
                        on_done=lambda arm, seed: done.append(arm))
    assert calls == ["good", "bad", "bad", "bad", "also"]
    assert done == ["good", "bad", "also"]
    assert failures == {("bad", 0): "RuntimeError: second line"}


def test_experiment_raises_jobs_failed_after_writing_the_report(tmp_path, monkeypatch,
                                                                one_torch_thread):
    from harness.lab import executors

    folder = make_folder(tmp_path)
    real = executors.run_job

    def fail_best_of_n(folder, plan, arm, seed, progress=False):
        if arm == "best_of_n":
            raise RuntimeError("out of memory")
        return real(folder, plan, arm, seed, progress)

    monkeypatch.setattr(executors, "run_job", fail_best_of_n)
    with pytest.raises(JobsFailed, match="arm best_of_n seed 0 failed: RuntimeError: out of"):
        run_experiment(folder, progress=False, executor=ExecutorSpec(job_retries=0))
    assert (folder / "report.md").exists()
    assert {k[0] for k in run_keys(folder)} == {"full"}


# --- one-line errors, before any folder is made ---
@pytest.mark.parametrize("args, message", [
    (["--executor", "ray", "--ray-address", "127.0.0.1:9"], "cannot reach a Ray cluster"),
    (["--executor", "ray", "--ray-address", "not-an-address"], "must be auto or HOST:PORT"),
    (["--executor", "slurm"], "needs SLURM's sbatch on PATH"),
])
def test_unusable_executor_is_one_line_and_exit_1(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no sbatch here
    result = CliRunner().invoke(main, ["experiment", REQUEST, "--model", "tiny", *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not any(Path(os.environ["HARNESS_REPORTS_DIR"]).glob("*"))


# --- SLURM through submitit's local executor ---
def test_submitit_local_gives_the_same_folder_as_local(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the job processes' torch threads
    local = make_folder(tmp_path / "local")
    run_experiment(local, progress=False)
    slurm = make_folder(tmp_path / "slurm")
    run_experiment(slurm, progress=False,
                   executor=ExecutorSpec("slurm", max_parallel=2, slurm_cluster="local"))
    assert_same_results(local, slurm)
    assert any((slurm / "slurm").rglob("*_log.out"))  # the job logs live in the folder


# --- Ray, for real, on loopback only ---
@needs_private_net
def test_ray_executor_gives_the_same_folder_as_local(tmp_path, monkeypatch, one_torch_thread):
    reports = {kind: tmp_path / kind for kind in ("local", "ray")}
    proc = in_private_net(["harness", "experiment", REQUEST, "--model", "tiny", "--budget",
                           "smoke", "--quiet", "--executor", "ray"], reports["ray"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    monkeypatch.setenv("HARNESS_REPORTS_DIR", str(reports["local"]))  # meanwhile, here
    assert run("experiment", REQUEST, "--model", "tiny", "--budget", "smoke",
               "--quiet").exit_code == 0
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    local, ray = (next(p for p in root.iterdir() if p.is_dir()) for root in reports.values())
    assert_same_results(local, ray)


@needs_private_net
def test_eval_executor_ray_scores_like_the_local_pool(tmp_path, one_torch_thread):
    outs = {kind: tmp_path / kind for kind in ("local", "ray")}
    args = ["discover", "--env", "toy", "--model", "tiny", "--budget", "smoke", "--quiet"]
    proc = in_private_net(["harness", *args, "--out", str(outs["ray"]), "--set",
                           "eval_executor=ray"], tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    assert run(*args, "--out", str(outs["local"])).exit_code == 0  # meanwhile, here
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    x, y = (pd.read_csv(outs[k] / "data" / "rollouts.csv") for k in ("local", "ray"))
    pd.testing.assert_frame_equal(x, y)


def _driver(folder: Path, retries: int = 2) -> list[str]:
    code = ("import sys; from harness.lab.experiment import run_experiment; "
            "from harness.lab.executors import ExecutorSpec; "
            f"run_experiment(sys.argv[1], executor=ExecutorSpec('ray', job_retries={retries}))")
    return [sys.executable, "-c", code, str(folder)]


def _wait_for_a_step(folder: Path, proc: subprocess.Popen, timeout_s: float = 300) -> dict:
    """The worker.json of the first shard that has recorded a step."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the experiment ended before any step was recorded"
        for shard in sorted((folder / "data" / "shards").glob("*")):
            steps = shard / "steps.csv"
            if steps.exists() and len(steps.read_text().splitlines()) > 1:
                return {**json.loads((shard / "worker.json").read_text()), "shard": shard}
        time.sleep(0.05)
    raise AssertionError("no step recorded in time")


@needs_private_net
def test_killed_ray_worker_is_retried_from_its_checkpoint(tmp_path):
    folder = make_folder(tmp_path, steps=8, max_new_tokens=48)
    proc = in_private_net(_driver(folder), tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    victim = _wait_for_a_step(folder, proc)
    os.kill(victim["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    keys = run_keys(folder)
    assert len(keys) == len(set(keys)) == 2 * 8  # every (arm, seed, step) exactly once
    retried = json.loads((victim["shard"] / "worker.json").read_text())
    assert retried["pid"] != victim["pid"]  # a new attempt ran the rest of that job
    rollouts = pd.read_csv(folder / "data" / "rollouts.csv")
    assert not rollouts.duplicated(["arm", "seed", "step", "group", "text"]).any()
    assert len(rollouts) == 2 * 8 * 4
    assert (folder / "report.md").exists()


def processes_in(netns: str) -> list[str]:
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if os.readlink(f"/proc/{p.pid}/ns/net") == netns:
                found.append(" ".join(p.info["cmdline"] or [])[:200])
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return found


@needs_private_net
def test_ctrl_c_cancels_every_job_and_leaves_no_process(tmp_path):
    folder = make_folder(tmp_path, steps=8, max_new_tokens=48)
    proc = in_private_net(_driver(folder), tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    _wait_for_a_step(folder, proc)
    netns = os.readlink(f"/proc/{proc.pid}/ns/net")  # the private one, by now
    assert netns != os.readlink("/proc/self/ns/net")
    running = processes_in(netns)
    assert any(c.startswith("ray::run_job") for c in running)  # Ray, its workers, sandboxes
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    deadline = time.monotonic() + 30  # Ray's own processes take a moment to exit
    while (left := processes_in(netns)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == []  # no Ray worker, raylet or GCS process outlives the experiment
    assert (folder / "report.md").exists()


def test_a_sweep_runs_its_experiments_through_the_executor(tmp_path, monkeypatch,
                                                           one_torch_thread):
    from harness.lab.sweep import run_sweep, start_sweep
    from harness.lab.sweep_state import load_state

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    root = start_sweep("run toy", root=tmp_path, experiments=1, hours=1, reviewer="offline",
                       budget="smoke", model="tiny")
    run_sweep(root, progress=False,
              executor=ExecutorSpec("slurm", max_parallel=2, slurm_cluster="local"))
    [entry] = load_state(root).experiments
    assert entry.status == "done", entry.error
    assert any((root / entry.folder / "slurm").rglob("*_log.out"))  # the jobs went through it
    assert len(run_keys(root / entry.folder)) == 2  # 1 arm x 1 seed x 2 steps

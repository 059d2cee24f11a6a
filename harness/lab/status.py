"""Where an experiment or a sweep stands, read cheaply from its folder (`harness status`),
and starting one in the background (`--background`).

A running experiment holds `run.json` (its process id and start time) from its first job to
its end; each job writes its steps into its own shard as it goes (records.shard_dir). A
sweep's state (sweep.json) names the process of its running experiment. So a poll reads a
few small files and never imports torch: it answers at once, and a Claude Code command can
call it every minute while the job runs in the background, its output in `run.log`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import psutil

from harness.base import records
from harness.lab.folders import PLAN_FILE, experiment_folder, ran
from harness.lab.sweep_state import STATE_FILE, load_state

RUN_FILE = "run.json"  # {"pid", "started"} while an experiment's process runs it
LOG_FILE = "run.log"   # where the Claude Code commands send a background run's output


@contextmanager
def running(folder: Path):
    """Mark `folder` as run by this process until the block ends (however it ends)."""
    path = Path(folder) / RUN_FILE
    path.write_text(json.dumps({"pid": os.getpid(), "started": time.time()}) + "\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def steps_done(folder: Path, arm: str, seed: int) -> int:
    """Finished steps of one run: the rows of its shard's steps.csv (its live record)."""
    path = records.shard_dir(folder, arm, seed) / "steps.csv"
    if not path.is_file():
        return 0
    with path.open() as f:
        return max(0, sum(1 for _ in f) - 1)


def status(folder: Path) -> dict:
    """{"state", "steps_done", "steps_total", "runs_done", "runs", "report", "log"} where state
    is planned | running | finished | stopped (it ran, it is not running, it is not done)."""
    folder = experiment_folder(folder)
    plan = json.loads((folder / PLAN_FILE).read_text())
    steps = int(plan["settings"]["steps"])
    runs = [(arm["name"], seed) for arm in plan["arms"] for seed in plan["seeds"]]
    done = [min(steps, steps_done(folder, arm, seed)) for arm, seed in runs]
    finished = sum(d == steps for d in done)
    if _alive(folder / RUN_FILE):
        state = "running"
    elif finished == len(runs) and (folder / "report.md").is_file():
        state = "finished"
    else:
        state = "stopped" if ran(folder) else "planned"
    return {"state": state, "steps_done": sum(done), "steps_total": steps * len(runs),
            "runs_done": finished, "runs": len(runs),
            "report": str(folder / "report.md") if (folder / "report.md").is_file() else "",
            "log": _last_line(folder / LOG_FILE)}


def start_in_background(cmd: list[str], folder: Path) -> int:
    """Run `cmd` detached from this terminal (its own session, no stdin), its stdout and
    stderr in `folder`/run.log, and record it in run.json; returns its pid."""
    with (Path(folder) / LOG_FILE).open("ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=os.environ | {"PYTHONUNBUFFERED": "1"})
    (Path(folder) / RUN_FILE).write_text(json.dumps({"pid": proc.pid,
                                                     "started": time.time()}) + "\n")
    return proc.pid


def sweep_status(root: Path) -> dict:
    """{"state", "experiments": {status: count}, "max_experiments", "stop_reason", "log"}."""
    sweep = load_state(root)
    alive = _alive(Path(root) / RUN_FILE) or any(
        e.status == "running" and e.pid and _pid_alive(e.pid) for e in sweep.experiments)
    state = "running" if alive else "finished" if sweep.status == "finished" else "stopped"
    return {"state": state, "experiments": dict(Counter(e.status for e in sweep.experiments)),
            "max_experiments": sweep.max_experiments, "stop_reason": sweep.stop_reason,
            "digest": str(Path(root) / "SWEEP.md"), "log": _last_line(Path(root) / LOG_FILE)}


def folder_status(folder: Path) -> dict:
    """`sweep_status` of a sweep's folder, else `status` of an experiment's."""
    return sweep_status(folder) if (Path(folder) / STATE_FILE).is_file() else status(folder)


def status_line(folder: Path) -> str:
    """One line: `<name>: running, 10/48 steps, 1/6 runs finished; report: ...` (a sweep:
    its experiments by status and its digest)."""
    s = folder_status(folder)
    if "experiments" in s:
        counts = ", ".join(f"{n} {k}" for k, n in s["experiments"].items()) or "none yet"
        line = (f"{Path(folder).name}: sweep {s['state']}, experiments: {counts} (at most "
                f"{s['max_experiments']}){'; ' + s['stop_reason'] if s['stop_reason'] else ''}"
                f"; digest: {s['digest']}")
        return line + (f"; log: {s['log']}" if s["log"] else "")
    line = (f"{Path(folder).name}: {s['state']}, {s['steps_done']}/{s['steps_total']} steps, "
            f"{s['runs_done']}/{s['runs']} runs finished; report: {s['report'] or 'not yet'}")
    return line + (f"; log: {s['log']}" if s["log"] else "")


def _alive(run_file: Path) -> bool:
    try:
        pid = int(json.loads(run_file.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _last_line(path: Path, tail_bytes: int = 4096) -> str:
    """The last non-empty line of a log (a progress bar's carriage returns split lines)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - tail_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""

"""The sweep's state file, `sweep.json`: crash-proof, one writer.

The sweep process holds `sweep.lock` (an OS file lock, released by the kernel when the
process dies, even on kill -9) for as long as it runs, so there is one writer. Every change
goes through `Store.edit()`, which also counts the time and CPU spent since the last change
into the sweep and its running experiment, and rewrites the whole file atomically (a temp
file, fsync, os.replace): a crash leaves the previous version or the new one, never half.
A heartbeat thread calls `edit()` every few seconds, so a kill loses at most that much.

    {"version": 1, "request": ..., "env": ..., "budget": ..., "model": ..., "device": ...,
     "reviewer": "auto", "max_experiments": 3, "hours": 8.0, "time_used_s": 312.5,
     "status": "running" | "finished", "stop_reason": "", "created": ...,
     "track": 1, "tracks": 1,    (track k of K parallel tracks of a question: tracks.py)
     "experiments": [{"index": 1, "folder": "01-tune-c-puct-on-toy", "title": ...,
                      "source": "planner" | "review of 01-...",
                      "status": "pending" | "running" | "done" | "failed",
                      "pid": 4242, "heartbeat": 1767000000.0, "attempts": 1,
                      "started": ..., "ended": ..., "error": "",
                      "reviewer": "", "stop": false,
                      "ledger": {"wall_s", "cpu_s", "gpu_s", "tokens", "rollouts",
                                 "reviewer_tokens", "reviewer_usd"}}, ...]}
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.base.errors import UserError

STATE_FILE = "sweep.json"
LOCK_FILE = "sweep.lock"


class SweepError(UserError):
    """A sweep that cannot start or resume; one line saying why."""


@dataclass
class Ledger:
    """What one experiment spent."""
    wall_s: float = 0.0         # while it ran, over all attempts
    cpu_s: float = 0.0          # user + system CPU of the sweep process and reaped children
    gpu_s: float = 0.0          # wall time holding the GPU (device cuda)
    tokens: int = 0             # generated tokens (steps.csv tokens/generated)
    rollouts: int = 0           # rows of rollouts.csv
    reviewer_tokens: int = 0    # input + output tokens of its review
    reviewer_usd: float = 0.0   # at list prices


@dataclass
class Entry:
    index: int
    folder: str                 # relative to the sweep root: NN-<slug>
    title: str
    source: str                 # "planner" or "review of <folder>"
    status: str = "pending"
    pid: int | None = None      # the sweep process that ran it last
    heartbeat: float | None = None  # epoch seconds, refreshed while it runs
    attempts: int = 0
    started: str = ""
    ended: str = ""
    error: str = ""
    reviewer: str = ""          # who reviewed it (once reviewed)
    stop: bool = False          # its reviewer said the question is answered
    ledger: Ledger = field(default_factory=Ledger)


@dataclass
class SweepState:
    request: str
    env: str
    budget: str
    model: str
    device: str
    reviewer: str
    max_experiments: int
    hours: float
    created: str
    time_used_s: float = 0.0
    status: str = "running"
    stop_reason: str = ""
    track: int = 1              # this sweep is track k of `tracks` run side by side (tracks.py);
    tracks: int = 1             # the reviewers use it to send the tracks different ways
    experiments: list[Entry] = field(default_factory=list)
    version: int = 1

    @property
    def time_left_s(self) -> float:
        return self.hours * 3600 - self.time_used_s


def load_state(root: Path) -> SweepState:
    path = Path(root) / STATE_FILE
    if not path.exists():
        raise SweepError(f"{root} is not a sweep folder (no {STATE_FILE})")
    data = json.loads(path.read_text())
    experiments = [Entry(**{**e, "ledger": Ledger(**e["ledger"])}) for e in data["experiments"]]
    return SweepState(**{**data, "experiments": experiments})


def write_state(root: Path, state: SweepState) -> None:
    """Atomic: a temp file beside it, flushed to disk, then renamed over sweep.json."""
    path = Path(root) / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        f.write(json.dumps(dataclasses.asdict(state), indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def cpu_seconds() -> float:
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Store:
    """The one writer's sweep.json: `with store.edit() as state:` changes, accounts, saves."""

    def __init__(self, root: Path, state: SweepState | None = None):
        self.root = Path(root)
        self.state = state or load_state(self.root)
        self._lock = threading.RLock()
        self._clock, self._cpu = time.monotonic(), cpu_seconds()

    @contextmanager
    def edit(self):
        with self._lock:
            self._account()
            yield self.state
            write_state(self.root, self.state)

    def _account(self) -> None:
        now, cpu = time.monotonic(), cpu_seconds()
        wall, used = now - self._clock, cpu - self._cpu
        self._clock, self._cpu = now, cpu
        self.state.time_used_s += wall
        for entry in self.state.experiments:
            if entry.status == "running" and entry.pid == os.getpid():
                entry.heartbeat = time.time()
                entry.ledger.wall_s += wall
                entry.ledger.cpu_s += used
                if self.state.device.startswith("cuda"):
                    entry.ledger.gpu_s += wall


@contextmanager
def owning(root: Path, heartbeat_s: float):
    """Take sweep.lock, load the state, and beat the heart (an `edit()` every `heartbeat_s`)
    until the block ends; yields the `Store`."""
    from filelock import FileLock, Timeout

    root = Path(root)
    load_state(root)  # a clear error for a folder that is not a sweep, before any lock file
    lock = FileLock(str(root / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        beats = [e.heartbeat for e in load_state(root).experiments if e.heartbeat]
        ago = f", last heartbeat {time.time() - max(beats):.0f} s ago" if beats else ""
        raise SweepError(f"{root} is being run by another process{ago}") from None
    store, stop = Store(root), threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat_s):
            with store.edit():
                pass

    thread = threading.Thread(target=beat, name="sweep-heartbeat", daemon=True)
    thread.start()
    try:
        yield store
    finally:
        stop.set()
        thread.join()
        with store.edit():
            pass
        lock.release()

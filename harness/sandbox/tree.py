"""One candidate's process tree while it runs: the cgroup that counts it, the 20 ms watch
that samples and kills it (`monitor`), and `kill_all` for every live tree (Ctrl-C, errors).
See runner.py for what the sandbox protects against."""

from __future__ import annotations

import atexit
import ctypes
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness.sandbox.isolation import Isolation, read
from harness.sandbox.limits import Limits

POLL_S = 0.02


@contextmanager
def pids_cgroup(parent: Path | None, max_pids: int):
    """A fresh cgroup with pids.max, removed afterwards; None where cgroups are unavailable."""
    path = None
    try:
        if parent is not None:
            path = Path(tempfile.mkdtemp(dir=parent))
            Path(path, "pids.max").write_text(str(max_pids))
    except OSError:
        pass
    try:
        yield path
    finally:
        for _ in range(100 if path else 0):  # the last exiting tasks can hold it a moment
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.01)


_libc = ctypes.CDLL(None, use_errno=True)


def preexec_for(cgroup_fd: int | None) -> Callable[[], None]:
    """Runs between fork and exec in a threaded parent: two syscalls, nothing that locks."""

    def preexec() -> None:
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the harness
        if cgroup_fd is not None:
            try:
                os.write(cgroup_fd, b"0")  # "0": move this process into the cgroup
            except OSError:
                pass  # then only psutil sampling counts the processes

    return preexec


@dataclass(eq=False)  # hashed by identity, kept in RUNS
class Run:
    """A live child: everything needed to sample it and to kill its whole tree from any thread."""

    proc: subprocess.Popen
    iso: Isolation
    cgroup: Path | None
    cancel: threading.Event | None
    seen: dict[psutil.Process, float] = field(default_factory=dict)  # process -> CPU seconds
    peak_rss: int = 0
    kill_reason: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    reaped: bool = False

    @property
    def n_wrappers(self) -> int:  # unshare and the driver are ours, not the candidate's
        return 1 + int(bool(self.iso.wrapper))

    def tree(self) -> list[psutil.Process]:
        if self.cgroup is not None:  # exact, cheap, and holds processes that left the tree
            pids = [int(pid) for pid in read(self.cgroup / "cgroup.procs").split()]
            return [p for p in map(process, pids) if p is not None]
        root = process(self.proc.pid)
        try:
            return [root, *root.children(recursive=True)] if root else []
        except psutil.Error:
            return [root]

    def wrappers(self) -> list[psutil.Process]:
        """[unshare, driver] or [driver]: the driver is process 1 of the PID namespace."""
        root = process(self.proc.pid)
        try:
            return [root, *root.children()][: self.n_wrappers] if root else []
        except psutil.Error:
            return [root]

    def sample(self, limits: Limits) -> str:
        """Record the tree; return why it must be killed, or ""."""
        if self.cgroup is not None and read(self.cgroup / "pids.events").split()[-1:] != ["0"]:
            return f"process limit of {limits.max_procs} reached (a fork was refused)"
        procs = self.tree()
        if len(procs) - self.n_wrappers > limits.max_procs:
            return f"process limit exceeded ({len(procs) - self.n_wrappers} > {limits.max_procs})"
        rss = 0
        for p in procs:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    rss += p.memory_info().rss
                self.seen[p] = t.user + t.system
            except psutil.Error:
                self.seen.setdefault(p, 0.0)
        self.peak_rss = max(self.peak_rss, rss)
        if sum(self.seen.values()) > limits.cpu_limit_s:
            return f"timeout: CPU limit of {limits.cpu_limit_s:g} s exceeded"
        return ""

    def kill(self, reason: str = "") -> None:
        self.kill_reason = self.kill_reason or reason
        wrappers = self.wrappers()
        if self.iso.pid_ns and len(wrappers) == self.n_wrappers:
            ignore_missing(wrappers[-1].kill)  # namespace init: the kernel kills all at once
        # Then the candidate's processes, while the driver (a subreaper) still holds their
        # orphans in the tree; then our wrappers and the process group.
        ours = {w.pid for w in wrappers}
        for _ in range(5):  # forks can race a round
            targets = [p for p in self.tree() if p.pid not in ours]
            for p in [*targets, *self.seen]:
                if p.pid not in ours:
                    ignore_missing(p.kill)  # psutil refuses if the pid was reused
            if not targets:
                break
        with self.lock:  # once reaped, the pgid number may belong to someone else
            if not self.reaped:
                ignore_missing(os.killpg, self.proc.pid, signal.SIGKILL)
        for p in [*wrappers, *self.tree(), *self.seen]:
            ignore_missing(p.kill)


def process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def ignore_missing(fn: Callable, *args) -> None:
    try:
        fn(*args)
    except (ProcessLookupError, PermissionError, psutil.Error):
        pass


RUNS: set[Run] = set()
RUNS_LOCK = threading.Lock()
_kills = 0  # kill_all() calls without a cancel event, so far (`register` checks it)


def kills_so_far() -> int:
    """Read before starting a child; give it to `register` once the child is started."""
    with RUNS_LOCK:
        return _kills


def register(run: Run, kills_before: int) -> None:
    """Add a started child to RUNS; kill it if a kill_all() came while it was starting (it
    was not in RUNS yet). A cancelled one is `monitor`'s to kill: it checks the event."""
    with RUNS_LOCK:
        RUNS.add(run)
        missed = _kills != kills_before
    if missed:
        run.kill("killed by kill_all")


def unregister(run: Run) -> None:
    """Drop a finished child from RUNS (after `monitor` has reaped it)."""
    with RUNS_LOCK:
        RUNS.discard(run)


def kill_all(cancel: threading.Event | None = None) -> None:
    """Kill every live sandbox tree (only those started under `cancel`, when given), and
    any that is starting now (`register`)."""
    global _kills
    with RUNS_LOCK:
        runs = [r for r in RUNS if cancel is None or r.cancel is cancel]
        _kills += cancel is None
    for run in runs:
        run.kill("killed by kill_all")


atexit.register(kill_all)


def monitor(run: Run, limits: Limits, started: float) -> tuple[int, object]:
    """Sample the tree until the child exits; kill on any limit; kill leftovers; reap."""
    pid = run.proc.pid
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    try:
        while not os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
            reason = ""
            if time.monotonic() - started > limits.wall_s:
                reason = f"timeout after {limits.wall_s:g} s wall"
            elif run.cancel is not None and run.cancel.is_set():
                reason = "cancelled"
            reason = reason or run.sample(limits)
            if reason:
                run.kill(reason)
            if pidfd is None:
                time.sleep(POLL_S)
            else:  # wakes as soon as the child exits, so fast candidates return fast
                select.select([pidfd], [], [], POLL_S)
        run.kill()  # the child is a zombie: its group may still hold daemons it left behind
        with run.lock:
            _, status, rusage = os.wait4(pid, 0)
            run.reaped = True
        run.proc.returncode = os.waitstatus_to_exitcode(status)
        return status, rusage
    finally:
        if pidfd is not None:
            os.close(pidfd)

"""The one module through which untrusted (model-written) code runs.

Each candidate runs in a fresh temporary working directory (deleted afterwards), in its own
session, behind a wrapper (bubblewrap or `unshare --fork`, see isolation.py) and the driver
in driver.py. With bubblewrap, or as root with util-linux `unshare`, it protects against:
- reading the user's files: the candidate sees only isolation.view() (the interpreter, the
  compilers, their libraries) and its working directory; home folders, the rest of /tmp,
  the reports root and the project checkout do not exist for it;
- runaway time: the parent polls every 20 ms and enforces the wall clock (no threads to kill);
  CPU time by RLIMIT_CPU per process and by a CPU sum over the tree;
- escaping the kill: the candidate lives in a private PID namespace that dies with its first
  process (double-forked daemons too); the driver is a subreaper that kills what is left when
  the candidate exits; we also kill the process group and every pid we saw;
- fork bombs: a pids cgroup (v1, or v2 when delegated) caps processes and threads in the
  kernel, and a refused fork kills the run; without one, only 20 ms samples count the tree;
- memory: RLIMIT_AS per process; output floods: unnamed temp files, RLIMIT_FSIZE at 4x
  `max_output_bytes` per file (status "bad_output"); we keep at most the cap;
- the network: a private network namespace with only its own loopback (`network_isolated()`);
- writing files: everything read-only except the working dir (HOME, TMPDIR) and a private
  /dev/shm; all capabilities dropped, so root inside cannot remount;
- secrets: variables named like KEY, TOKEN, SECRET, PASSWORD, PASSWD, CREDENTIAL are dropped;
  `call_python` results travel on their own fd behind a nonce, never via stdout.

It does NOT protect against: secrets in other variables (a URL with a password); files
inside Python's own prefix (a pyenv or conda folder in a home is shown, as the interpreter
needs it); many files each under the size cap; kernel exploits, side channels, the GPU; a
candidate that reads the driver's stack to forge a result (it gains nothing over returning
that value). Without bubblewrap, root, `unshare` or cgroups it degrades step by step
(read-only files that stay visible; net namespace only; a plain `unshare --fork` parent; a
bare child): the candidate may then read and write wherever the harness user can, reach the
network, signal the user's processes, and outrun the sampling with a fork bomb.
`isolation().warning()` says so in one line. cpu_s and peak_memory_mb are approximate (20 ms
psutil samples and the rusage of the reaped child).
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import json
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from harness.base.errors import first_line
from harness.sandbox.driver import SETUP_FAILED
from harness.sandbox.isolation import Isolation, isolation, read


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    """Wall-clock limit, enforced by the parent."""
    cpu_s: float | None = None
    """CPU-time limit (RLIMIT_CPU per process and a sum over the tree); None: same as wall_s."""
    memory_mb: int = 2048
    """Address-space limit per process (RLIMIT_AS)."""
    max_procs: int = 64
    """Most processes the candidate may have at once (threads count too under a cgroup)."""
    max_output_bytes: int = 1_000_000
    """Cap on the captured stdout and on stderr each; any file past 4x the cap kills the run."""
    network: bool = False
    """False: run in a private network namespace when the OS allows it."""

    @property
    def cpu_limit_s(self) -> float:
        return self.wall_s if self.cpu_s is None else self.cpu_s

    @property
    def file_size_limit(self) -> int:
        return 4 * self.max_output_bytes


@dataclass(frozen=True)
class SandboxResult:
    status: str  # "ok", "error", "timeout", "memory", "killed", "bad_output"
    exit_code: int | None
    wall_s: float
    cpu_s: float
    peak_memory_mb: float
    stdout: str
    stderr: str
    truncated: bool
    reason: str  # one line
    value: object = None  # call_python: the JSON-decoded return value

    @property
    def ok(self) -> bool:
        return self.status == "ok"


LANGUAGES = ("python", "cpp")
CXX_FLAGS = ("-O2", "-std=c++17")
POLL_S = 0.02
_WORKDIR_PREFIX = "harness-sbx-"  # tests patch it to find leftovers by a unique marker
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
_worker = threading.local()  # this thread's WorkerSlot, set by `bind_worker`


@dataclass(frozen=True)
class WorkerSlot:
    """What a pool's worker thread binds for every program it runs: the Event that cancels
    them (set by the pool on an error or Ctrl-C) and the CPU they are pinned to (None: any)."""
    cancel: threading.Event | None = None
    cpu: int | None = None


def bind_worker(slot: WorkerSlot) -> None:
    """Bind `slot` to the calling thread: programs it runs from now on are pinned to
    `slot.cpu` and stop when `slot.cancel` is set."""
    _worker.slot = slot


def worker_slot() -> WorkerSlot:
    """The calling thread's slot (an unbound one: no cancel Event, no pinning)."""
    return getattr(_worker, "slot", _UNBOUND)


_UNBOUND = WorkerSlot()


def network_isolated() -> bool:
    return isolation().net


# --- one child process --------------------------------------------------------------------


@contextmanager
def _workdir():
    path = tempfile.mkdtemp(prefix=_WORKDIR_PREFIX)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        try:  # the empty mount point of the driver's hidden-files root (isolation.py)
            os.rmdir(path + ".root")
        except OSError:
            pass


@contextmanager
def _pids_cgroup(parent: Path | None, max_pids: int):
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


def _child_env(workdir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not any(w in k.upper() for w in _SECRET_WORDS)}
    env.setdefault("PATH", os.defpath)
    threads = dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), "1")
    return env | threads | {"HOME": workdir, "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1"}


def _driver_spec(mode: str, workdir: str, limits: Limits, iso: Isolation, **extra) -> str:
    spec = dict(mode=mode, workdir=workdir, **iso.driver_spec(),
                cpu_s=math.ceil(limits.cpu_limit_s),
                as_bytes=limits.memory_mb * 2**20, fsize=limits.file_size_limit,
                cpu=worker_slot().cpu, **extra)
    return json.dumps(spec)


_libc = ctypes.CDLL(None, use_errno=True)


def _preexec(cgroup_fd: int | None) -> Callable[[], None]:
    """Runs between fork and exec in a threaded parent: two syscalls, nothing that locks."""

    def preexec() -> None:
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the harness
        if cgroup_fd is not None:
            try:
                os.write(cgroup_fd, b"0")  # "0": move this process into the cgroup
            except OSError:
                pass  # then only psutil sampling counts the processes

    return preexec


@dataclass(eq=False)  # hashed by identity, kept in _RUNS
class _Run:
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
            return [p for p in map(_process, pids) if p is not None]
        root = _process(self.proc.pid)
        try:
            return [root, *root.children(recursive=True)] if root else []
        except psutil.Error:
            return [root]

    def wrappers(self) -> list[psutil.Process]:
        """[unshare, driver] or [driver]: the driver is process 1 of the PID namespace."""
        root = _process(self.proc.pid)
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
            _ignore_missing(wrappers[-1].kill)  # namespace init: the kernel kills all at once
        # Then the candidate's processes, while the driver (a subreaper) still holds their
        # orphans in the tree; then our wrappers and the process group.
        ours = {w.pid for w in wrappers}
        for _ in range(5):  # forks can race a round
            targets = [p for p in self.tree() if p.pid not in ours]
            for p in [*targets, *self.seen]:
                if p.pid not in ours:
                    _ignore_missing(p.kill)  # psutil refuses if the pid was reused
            if not targets:
                break
        with self.lock:  # once reaped, the pgid number may belong to someone else
            if not self.reaped:
                _ignore_missing(os.killpg, self.proc.pid, signal.SIGKILL)
        for p in [*wrappers, *self.tree(), *self.seen]:
            _ignore_missing(p.kill)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _ignore_missing(fn: Callable, *args) -> None:
    try:
        fn(*args)
    except (ProcessLookupError, PermissionError, psutil.Error):
        pass


_RUNS: set[_Run] = set()
_RUNS_LOCK = threading.Lock()


def kill_all(cancel: threading.Event | None = None) -> None:
    """Kill every live sandbox tree (only those started under `cancel`, when given)."""
    with _RUNS_LOCK:
        runs = [r for r in _RUNS if cancel is None or r.cancel is cancel]
    for run in runs:
        run.kill("killed by kill_all")


atexit.register(kill_all)


def _execute(mode: str, workdir: str, stdin: bytes, limits: Limits,
             pass_fds: tuple[int, ...] = (), **spec) -> SandboxResult:
    """Run the driver with `spec` under the limits and kill its whole tree. The result is not
    classified yet: status is "" and reason says why we killed it, if we did."""
    cancel = worker_slot().cancel
    if cancel is not None and cancel.is_set():
        return SandboxResult("", None, 0.0, 0.0, 0.0, "", "", False, "cancelled")
    iso = isolation()
    files = [tempfile.TemporaryFile() for _ in range(4)]  # unnamed: the child cannot find them
    stdin_f, out_f, err_f, status_f = files
    stdin_f.write(stdin)
    stdin_f.seek(0)
    spec_json = _driver_spec(mode, workdir, limits, iso, net=False,
                             status_fd=status_f.fileno(), **spec)
    # -S (no site, ~30 ms) unless the driver itself imports the candidate, who may want numpy
    flags = ["-I"] if mode == "call" else ["-I", "-S"]
    cmd = [*iso.prefix(limits.network, workdir), sys.executable, *flags, iso.driver, spec_json]
    with _pids_cgroup(iso.cgroup, limits.max_procs + 1 + int(bool(iso.wrapper))) as cgroup:
        cgroup_fd = os.open(cgroup / "cgroup.procs", os.O_WRONLY) if cgroup else None
        try:
            started = time.monotonic()
            proc = subprocess.Popen(cmd, stdin=stdin_f, stdout=out_f, stderr=err_f, cwd=workdir,
                                    env=_child_env(workdir), start_new_session=True,
                                    pass_fds=(*pass_fds, status_f.fileno()),
                                    preexec_fn=_preexec(cgroup_fd))
        finally:
            if cgroup_fd is not None:
                os.close(cgroup_fd)
        run = _Run(proc, iso, cgroup, cancel)
        with _RUNS_LOCK:
            _RUNS.add(run)
        try:
            status, rusage = _monitor(run, limits, started)
        finally:
            with _RUNS_LOCK:
                _RUNS.discard(run)
    wall_s = time.monotonic() - started
    with stdin_f, out_f, err_f, status_f:
        status_f.seek(0)
        driver_says = status_f.read(32)  # the candidate's own wait status, if the driver lived
        status = int(driver_says) if driver_says.isdigit() and not run.kill_reason else status
        (stdout, out_size), (stderr, err_size) = (_read_capped(f, limits) for f in (out_f, err_f))
    reason = run.kill_reason
    if not reason and max(out_size, err_size) >= limits.file_size_limit:
        reason = f"output exceeded {limits.file_size_limit} bytes"  # before SIGXFSZ/EFBIG
    return SandboxResult("", os.waitstatus_to_exitcode(status), wall_s,
                         max(rusage.ru_utime + rusage.ru_stime, sum(run.seen.values())),
                         max(run.peak_rss / 2**20, rusage.ru_maxrss / 1024), stdout, stderr,
                         max(out_size, err_size) > limits.max_output_bytes, reason)


def _monitor(run: _Run, limits: Limits, started: float) -> tuple[int, object]:
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


def _read_capped(f, limits: Limits) -> tuple[str, int]:
    f.seek(0)
    return f.read(limits.max_output_bytes).decode("utf-8", "replace"), os.fstat(f.fileno()).st_size


# --- status and reason --------------------------------------------------------------------

def _classify(raw: SandboxResult, limits: Limits) -> SandboxResult:
    status, reason = _status_and_reason(raw, limits)
    return replace(raw, status=status, reason=reason)


def _status_and_reason(raw: SandboxResult, limits: Limits) -> tuple[str, str]:
    if raw.reason:  # we killed it (or its output flooded): the reason says which limit
        kind = raw.reason.split()[0].rstrip(":")
        return {"timeout": "timeout", "output": "bad_output"}.get(kind, "killed"), raw.reason
    code, oom = raw.exit_code, _oom_line(raw.stderr)
    if code == SETUP_FAILED and "sandbox setup failed" in raw.stderr:
        return "error", first_line(raw.stderr, last=True)
    if code is not None and code < 0:
        sig = signal.Signals(-code)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and raw.cpu_s >= limits.cpu_limit_s):
            return "timeout", f"timeout: CPU limit of {limits.cpu_limit_s:g} s exceeded"
        if sig == signal.SIGXFSZ:
            return "bad_output", f"a file exceeded {limits.file_size_limit} bytes"
        if not oom:
            return "killed", f"killed by signal {sig.name}"
    if oom:
        return "memory", f"memory limit of {limits.memory_mb} MB exceeded: {oom}"
    if code != 0:
        return "error", first_line(raw.stderr, last=True) or f"exit code {code}"
    return "ok", "ok"


def _oom_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if "MemoryError" in ln or "std::bad_alloc" in ln]
    return lines[-1].strip() if lines else ""


# --- public API ---------------------------------------------------------------------------


def run_program(source: str, language: str = "python", stdin: str = "",
                limits: Limits = Limits()) -> SandboxResult:
    """Run a whole program, feeding `stdin`; C++ is compiled once per source (cached)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")
    with _workdir() as workdir:
        if language == "python":
            Path(workdir, "main.py").write_text(source)
            cmd = [sys.executable, str(Path(workdir, "main.py"))]
        else:
            binary, failure = _compile_cpp(source)
            if failure is not None:
                return failure
            shutil.copy2(binary, Path(workdir, "main"))  # the cache is outside the view
            cmd = [str(Path(workdir, "main"))]
        return _classify(_execute("exec", workdir, stdin.encode(), limits, cmd=cmd), limits)


def _compile_cpp(source: str) -> tuple[Path | None, SandboxResult | None]:
    """g++ runs sandboxed too: the source is untrusted (#include "/dev/zero", template bombs)."""
    digest = hashlib.sha256(" ".join(CXX_FLAGS).encode() + b"\0" + source.encode()).hexdigest()
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "harness", "cpp")
    binary = cache_dir / digest
    if binary.exists():
        return binary, None
    limits = Limits(wall_s=60.0, memory_mb=4096, max_procs=16, max_output_bytes=16_000_000)
    with _workdir() as workdir:
        Path(workdir, "main.cpp").write_text(source)
        cmd = ["g++", *CXX_FLAGS, "main.cpp", "-o", "main"]
        result = _classify(_execute("exec", workdir, b"", limits, cmd=cmd), limits)
        if not result.ok:
            errors = [ln.strip() for ln in result.stderr.splitlines() if "error" in ln]
            reason = f"compile error: {errors[0] if errors else result.reason}"[:300]
            return None, replace(result, status="timeout" if result.status == "timeout"
                                 else "error", reason=reason)
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = binary.with_name(f"{digest}.{os.getpid()}.{threading.get_ident()}")
        shutil.copy2(Path(workdir, "main"), partial)
        os.replace(partial, binary)  # atomic: concurrent compiles of one source are fine
    return binary, None


def call_python(source: str, entry: str, kwargs: dict, limits: Limits = Limits(),
                module_globals: dict | None = None) -> SandboxResult:
    """Import `source` in the sandbox, call `entry(**kwargs)`, return its JSON value.

    `module_globals` (JSON values) are set in the candidate's module before it runs, e.g. the
    parent state's construction that a program may start from."""
    nonce = secrets.token_hex(16).encode()
    payload = {"kwargs": kwargs, "globals": module_globals or {}}
    stdin = nonce + b"\n" + json.dumps(payload).encode()  # TypeError here is the caller's bug
    with _workdir() as workdir, tempfile.TemporaryFile() as result_f:
        Path(workdir, "candidate.py").write_text(source)
        fd = result_f.fileno()
        raw = _execute("call", workdir, stdin, limits, (fd,), entry=entry, result_fd=fd)
        outcome = _read_outcome(result_f, nonce)
    result = _classify(raw, limits)
    if outcome == "too big":
        return replace(result, status="bad_output",
                       reason=f"return value exceeded {limits.file_size_limit} bytes")
    if result.status in ("timeout", "killed", "memory", "bad_output") or outcome is None:
        if result.ok:  # exit 0 without a result: sys.exit(0), os._exit(0)
            return replace(result, status="bad_output",
                           reason="no result: the candidate exited before returning")
        return result
    if "value" in outcome:
        return replace(result, status="ok", reason="ok", value=outcome["value"])
    if "bad" in outcome:
        return replace(result, status="bad_output", reason=outcome["bad"])
    if "MemoryError" in outcome["error"]:
        why = f"memory limit of {limits.memory_mb} MB exceeded: MemoryError"
        return replace(result, status="memory", reason=why)
    return replace(result, status="error", reason=outcome["error"][:300])


def _read_outcome(result_f, nonce: bytes) -> dict | str | None:
    """The driver's {"value"|"error"|"bad": ...}; only the driver knows the nonce, so lines the
    candidate forged are ignored. "too big": RLIMIT_FSIZE cut the line short."""
    result_f.seek(0)
    for line in result_f.read().splitlines():
        if line.startswith(nonce + b" "):
            try:
                return json.loads(line[len(nonce) + 1:])
            except ValueError:
                return "too big"
    return None

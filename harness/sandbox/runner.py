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

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from harness.base.errors import first_line
from harness.sandbox.driver import SETUP_FAILED
from harness.sandbox.isolation import isolation
from harness.sandbox.limits import DEFAULT_LIMITS, Limits, SandboxResult
from harness.sandbox.tree import (
    Run,
    kill_all,
    kills_so_far,
    monitor,
    pids_cgroup,
    preexec_for,
    register,
    unregister,
)

__all__ = ["LANGUAGES", "Limits", "SandboxResult", "WorkerSlot", "bind_worker", "call_python",
           "isolation", "kill_all", "network_isolated", "run_program", "worker_slot"]


LANGUAGES = ("python", "cpp")
CXX_FLAGS = ("-O2", "-std=c++17")
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


def _child_env(workdir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not any(w in k.upper() for w in _SECRET_WORDS)}
    env.setdefault("PATH", os.defpath)
    threads = dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), "1")
    # caches go to the working folder too: the harness's own torch sets TORCHINDUCTOR_CACHE_DIR
    # in its environment once inductor is touched, a path the candidate cannot see
    caches = {name: os.path.join(workdir, sub) for name, sub in (
        ("XDG_CACHE_HOME", ".cache"), ("TORCHINDUCTOR_CACHE_DIR", ".cache/torchinductor"),
        ("TRITON_CACHE_DIR", ".cache/triton"))}
    return env | threads | caches | {"HOME": workdir, "TMPDIR": workdir,
                                     "PYTHONDONTWRITEBYTECODE": "1"}


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
    spec_json = iso.driver_spec(mode, workdir, limits, worker_slot().cpu,
                                status_fd=status_f.fileno(), **spec)
    # -S (no site, ~30 ms) unless the driver itself imports the candidate, who may want numpy
    flags = ["-I"] if mode == "call" else ["-I", "-S"]
    cmd = [*iso.prefix(limits.network, workdir), sys.executable, *flags, iso.driver, spec_json]
    with pids_cgroup(iso.cgroup, limits.max_procs + 1 + int(bool(iso.wrapper))) as cgroup:
        cgroup_fd = os.open(cgroup / "cgroup.procs", os.O_WRONLY) if cgroup else None
        try:
            started, kills = time.monotonic(), kills_so_far()
            proc = subprocess.Popen(cmd, stdin=stdin_f, stdout=out_f, stderr=err_f, cwd=workdir,
                                    env=_child_env(workdir), start_new_session=True,
                                    pass_fds=(*pass_fds, status_f.fileno()),
                                    preexec_fn=preexec_for(cgroup_fd))
        finally:
            if cgroup_fd is not None:
                os.close(cgroup_fd)
        run = Run(proc, iso, cgroup, cancel)
        register(run, kills)
        try:
            status, rusage = monitor(run, limits, started)
        finally:
            unregister(run)
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
                limits: Limits = DEFAULT_LIMITS) -> SandboxResult:
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


def call_python(source: str, entry: str, kwargs: dict, limits: Limits = DEFAULT_LIMITS,
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

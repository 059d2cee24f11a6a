"""What the OS lets the sandbox do, probed once, and what a candidate may see.

Three wrappers can stand between the harness and a candidate, strongest first:
- **bubblewrap** (`bwrap`, the Debian package `bubblewrap`): it builds the candidate's file
  system from `view()` alone, plus private PID, IPC and network namespaces;
- **namespaces**: util-linux `unshare` makes private mount, PID and network namespaces, and
  the driver (driver.py) builds the same `view()` itself with mount(2) and chroot(2);
- **none**: a bare child, where the candidate can read and write what the harness user can.

Between them are weaker levels the probe falls back to, step by step: a read-only file
system that still shows every file, the network namespace alone, and a plain `unshare`
parent. `HARNESS_SANDBOX=bwrap|namespaces|none` forces a mechanism (default `auto`: the
strongest that works here); config.json records the one that ran (`describe()`).

The view: the system's program and library folders (/usr, /bin, /lib*, /sbin), the few
/etc files that the dynamic loader and compilers read, this Python's prefixes and
site-packages, /sys, a fresh /proc of the candidate's own PID namespace, a /dev of a few
device nodes (and /dev/nvidia*), and the candidate's working folder. Everything else, among
it the user's home, /home, /root, the rest of /tmp, the reports root and the project
checkout, does not exist for the candidate. Python's prefixes are shown even when they live
in a home folder (pyenv, conda): the interpreter cannot run without them.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.sandbox.limits import Limits

DRIVER = Path(__file__).with_name("driver.py")
DRIVER_IN_VIEW = "/run/harness/driver.py"  # where bwrap shows it (not the checkout's path)
MECHANISMS = ("auto", "bwrap", "namespaces", "none")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
             ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))
SHM_BYTES = 64 * 2**20  # a private /dev/shm for multiprocessing


@dataclass(frozen=True)
class Isolation:
    wrapper: str  # "bwrap", "unshare" or "": what stands between the harness and the driver
    net: bool  # private network namespace
    fs: bool  # read-only outside the working folder, private PID namespace
    hide: bool = False  # only view() exists for the candidate
    cgroup: Path | None = None  # where per-run pids cgroups go (kernel-enforced max_procs)

    @property
    def mechanism(self) -> str:
        """Who hides the user's files: "bwrap", "namespaces" or "none"."""
        if not self.hide:
            return "none"
        return "bwrap" if self.wrapper == "bwrap" else "namespaces"

    @property
    def pid_ns(self) -> bool:
        """The driver is process 1 of a private PID namespace (killing it kills the tree)."""
        return self.wrapper == "bwrap" or (self.wrapper == "unshare" and self.fs)

    def prefix(self, network: bool, workdir: str) -> list[str]:
        """The command line before `python driver.py SPEC` for a candidate in `workdir`."""
        if self.wrapper == "bwrap":
            return bwrap_args(view(), workdir, network=network or not self.net)
        if not self.wrapper:
            return []
        # --kill-child: if unshare dies (it dies with the harness thread that started it,
        # PR_SET_PDEATHSIG), the candidate gets SIGKILL, and with it its PID namespace.
        args = ["unshare", "--fork", "--kill-child"]
        if self.net and not network:
            args.append("--net")
        if self.fs:
            args += ["--mount", "--pid", "--mount-proc"]
        return [*args, "--"]

    @property
    def driver(self) -> str:
        """The driver's path as the wrapper's child sees it."""
        return DRIVER_IN_VIEW if self.wrapper == "bwrap" else str(DRIVER)

    def driver_spec(self, mode: str, workdir: str, limits: Limits, cpu: int | None = None,
                    **extra) -> str:
        """The driver's SPEC_JSON: its mode, the limits it sets, the CPU it pins to, and what
        it must isolate itself: make the file system read-only (fs) and build the view (a
        non-empty view). Under bwrap, bwrap has done both."""
        own = self.wrapper == "unshare"
        return json.dumps(dict(mode=mode, workdir=workdir, fs=own and self.fs,
                               view=view() if own and self.hide else [],
                               cpu_s=math.ceil(limits.cpu_limit_s),
                               as_bytes=limits.memory_mb * 2**20,
                               fsize=limits.file_size_limit, cpu=cpu, **extra))

    def describe(self) -> dict:
        """For config.json: what this run's candidates were isolated by."""
        return {"files_hidden_by": self.mechanism, "read_only": self.fs,
                "network_isolated": self.net, "process_cgroup": self.cgroup is not None,
                "wrapper": self.wrapper or "none"}

    def warning(self) -> str:
        """One line for the console when the user's files stay readable, else ""."""
        if self.hide:
            return ""
        return ("sandbox: cannot hide your files from model-written programs (install "
                "bubblewrap, or run as root with util-linux unshare); they can read what "
                "this user can")


_warned: list[str] = []


def warn_if_visible() -> None:
    """Print `Isolation.warning()` to stderr, once per process, where files stay visible."""
    line = isolation().warning()
    if line and not _warned:
        _warned.append(line)
        print(line, file=sys.stderr, flush=True)


@cache
def view() -> tuple[tuple[str, ...], ...]:
    """What a candidate sees besides its working folder: ("ro", path) bound read-only,
    ("dev", path) a device node, ("link", path, target) a symbolic link. Paths nested in
    another "ro" path are dropped."""
    entries: list[tuple[str, ...]] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            entries.append(("link", path, os.readlink(path)))
        elif os.path.isdir(path):
            entries.append(("ro", path))
    entries += [("ro", f"/etc/{name}") for name in ETC_FILES if os.path.lexists(f"/etc/{name}")]
    entries += [("ro", path) for path in _python_paths() if os.path.exists(path)]
    entries += [("ro", "/sys")] if os.path.isdir("/sys") else []
    devices = [f"/dev/{name}" for name in DEVICES] + sorted(glob.glob("/dev/nvidia*"))
    entries += [("dev", path) for path in devices if os.path.exists(path)]
    entries += [("link", path, target) for target, path in DEV_LINKS]
    ro = [e[1] for e in entries if e[0] == "ro"]
    return tuple(e for e in entries
                 if not (e[0] == "ro" and any(_inside(e[1], other) for other in ro)))


def _python_paths() -> list[str]:
    """This interpreter's prefixes, its stdlib and site-packages, both as named and as
    resolved (a venv's python is a link to the base install)."""
    named = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
             os.path.dirname(sys.executable), *site.getsitepackages(),
             site.getusersitepackages(), sysconfig.get_paths()["stdlib"]}
    return sorted(named | {os.path.realpath(p) for p in named})


def _inside(path: str, other: str) -> bool:
    return path != other and path.startswith(other.rstrip("/") + "/")


def bwrap_args(entries, workdir: str, network: bool) -> list[str]:
    """bubblewrap's command line for `view()` and a writable `workdir`."""
    args = ["bwrap", "--unshare-pid", "--unshare-ipc", "--as-pid-1", "--die-with-parent"]
    args += [] if network else ["--unshare-net"]
    args += ["--size", "1048576", "--tmpfs", "/dev"]
    for kind, path, *target in entries:
        args += {"ro": ["--ro-bind", path, path], "dev": ["--dev-bind", path, path],
                 "link": ["--symlink", *target, path]}[kind]
    args += ["--ro-bind", str(DRIVER), DRIVER_IN_VIEW, "--proc", "/proc",
             "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
             "--bind", workdir, workdir, "--chdir", workdir, "--remount-ro", "/", "--"]
    return args


def chosen() -> str:
    """HARNESS_SANDBOX, checked: one of MECHANISMS."""
    name = os.environ.get("HARNESS_SANDBOX", "auto") or "auto"
    if name not in MECHANISMS:
        raise ValueError(f"HARNESS_SANDBOX={name!r}; choose one of {', '.join(MECHANISMS)}")
    return name


def isolation() -> Isolation:
    """The strongest isolation that works here (within HARNESS_SANDBOX), probed once."""
    return _probe_levels(chosen())


@cache
def _probe_levels(mechanism: str) -> Isolation:
    cgroup = _pids_cgroup_parent()
    levels = []
    if mechanism in ("auto", "bwrap") and shutil.which("bwrap"):
        levels.append(Isolation("bwrap", True, True, True))
    if mechanism in ("auto", "namespaces") and shutil.which("unshare"):
        levels += [Isolation("unshare", net, fs, hide)
                   for net, fs, hide in ((True, True, True), (False, True, True),
                                         (True, True, False), (False, True, False),
                                         (True, False, False), (False, False, False))]
    for level in levels:
        level = Isolation(level.wrapper, level.net, level.fs, level.hide, cgroup)
        if _holds(level):
            return level
    return Isolation("", False, False, False, cgroup)


def _holds(iso: Isolation) -> bool:
    """Run the driver's probe under `iso`: 0 when every promise of `iso` is in force."""
    workdir = tempfile.mkdtemp(prefix="harness-probe-")
    canary = workdir + ".canary"  # outside the working folder, so outside the view
    try:
        Path(canary).write_text("probe")
        spec = iso.driver_spec("probe", workdir, Limits(wall_s=20), probe={
            "fs": iso.fs, "net": iso.net, "canary": canary if iso.hide else ""})
        cmd = [*iso.prefix(False, workdir), sys.executable, "-I", "-S", iso.driver, spec]
        probe = subprocess.run(cmd, cwd=workdir, capture_output=True, timeout=20)
        return probe.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for leftover in (canary, workdir + ".root"):
            _remove(leftover)


def _remove(path: str) -> None:
    try:
        os.rmdir(path) if os.path.isdir(path) else os.remove(path)
    except OSError:
        pass


def _pids_cgroup_parent() -> Path | None:
    """A cgroup directory under which we can create children with a pids.max: a cgroup v1
    pids hierarchy, or cgroup v2 whose root delegates `pids`. None when we may not."""
    try:
        mounts = [line.split()[1:4] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return None
    for mnt, fstype, opts in mounts:
        v1 = fstype == "cgroup" and "pids" in opts.split(",")
        v2 = fstype == "cgroup2" and "pids" in read(Path(mnt, "cgroup.subtree_control"))
        if not (v1 or v2):
            continue
        parent = Path(mnt, "harness-sandbox")
        try:
            parent.mkdir(exist_ok=True)
            if v2:  # let the per-run children below it have a pids.max
                Path(parent, "cgroup.subtree_control").write_text("+pids")
            return parent
        except OSError:
            continue
    return None


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""

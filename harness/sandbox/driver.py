"""The first code that runs inside the sandbox, between `unshare` and the candidate.

`harness.sandbox` starts it as `python -I sandbox_driver.py SPEC_JSON` with the candidate's
working directory as cwd. In order, it:
1. (when SPEC.view) builds the candidate's file system from the view alone: a fresh tmpfs
   root with only those paths bound in, read-only, plus the writable working directory
   (see isolation.py); (when only SPEC.fs) makes every mount read-only except the working
   directory. We are in a private mount namespace (`unshare --mount`), so the host's mounts
   are never touched. Under bubblewrap, bwrap has done this already;
2. sets the rlimits and the CPU affinity (here rather than in a `preexec_fn`, which is unsafe
   in a threaded parent and would run inside a fork of a possibly huge harness process);
3. drops every capability, so a candidate running as root cannot remount, raise its limits,
   or load kernel modules;
4. forks. The child (the candidate's process) in mode "exec" execs SPEC.cmd; in mode "call"
   reads a nonce and the kwargs from stdin, points stdin at /dev/null, imports ./candidate.py,
   calls SPEC.entry(**kwargs) and writes `nonce json` to the inherited fd SPEC.result_fd.
   The driver waits and writes the child's wait status to SPEC.status_fd, which the child
   closes first. Mode "probe" only checks that the isolation holds.

Stdlib only and no harness imports: it must start fast and run nothing the candidate wrote
before the candidate's turn.
"""

import ctypes
import importlib.util
import json
import os
import resource
import signal
import socket
import sys
import traceback

SETUP_FAILED = 121  # exit code that tells the parent the sandbox itself could not be set up

MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 0x1000, 0x2000, 0x4000, 1 << 18
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
SHM_OPTIONS = b"size=64m"
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 0x1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (Linux >= 5.12)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 36, 38
CAP_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("set", "clr", "propagation", "userns_fd")]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _set_readonly(path: str, readonly: bool, recursive: bool) -> None:
    attr = _MountAttr(MOUNT_ATTR_RDONLY if readonly else 0, 0 if readonly else MOUNT_ATTR_RDONLY)
    flags = AT_RECURSIVE if recursive else 0
    ret = _libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD),
                        path.encode(), ctypes.c_uint(flags), ctypes.byref(attr),
                        ctypes.c_size_t(ctypes.sizeof(attr)))
    _check(ret, f"mount_setattr({path})")


def isolate_filesystem(workdir: str) -> None:
    """Everything read-only except `workdir` (a bind mount of itself) and a fresh /dev/shm."""
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    wd = workdir.encode()
    _check(_libc.mount(wd, wd, None, MS_BIND | MS_REC, None), "bind the working directory")
    _set_readonly("/", True, recursive=True)
    _set_readonly(workdir, False, recursive=False)
    # multiprocessing needs a writable /dev/shm; a small private tmpfs dies with the namespace
    if os.path.isdir("/dev/shm"):
        _libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, SHM_OPTIONS)


def _mount(source: bytes | None, target: str, fstype: bytes | None, flags: int,
           data: bytes | None = None) -> None:
    _check(_libc.mount(source, target.encode(), fstype, flags, data), f"mount {target}")


def _mountpoint(path: str, like: str) -> None:
    """An empty directory, or an empty file when `like` is not a directory, at `path`."""
    if os.path.isdir(like):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()


def hide_files(view: list, workdir: str) -> None:
    """Make the view the whole file system: a tmpfs root (mounted at WORKDIR.root) holding
    only the view's paths, bound read-only, and `workdir` itself; then move it onto / and
    chroot into it. The old root stays mounted underneath, out of reach: no process of
    this PID namespace has it as root, and without capabilities none can chroot back."""
    root = workdir.rstrip("/") + ".root"
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    os.makedirs(root, exist_ok=True)
    _mount(b"tmpfs", root, b"tmpfs", MS_NOSUID, b"mode=0755,size=1m")
    for kind, path, *target in view:
        if kind == "link":
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            os.symlink(target[0], root + path)
        else:  # "ro" and "dev": a bind mount of the host's path
            _mountpoint(root + path, path)
            _mount(path.encode(), root + path, None, MS_BIND | MS_REC)
    for path in ("/proc", "/dev/shm", workdir):
        os.makedirs(root + path, exist_ok=True)
    _mount(workdir.encode(), root + workdir, None, MS_BIND)
    os.chdir(root)
    _mount(b".", "/", None, MS_MOVE)
    _check(_libc.chroot(b"."), "chroot")
    _set_readonly("/", True, recursive=True)
    _set_readonly(workdir, False, recursive=False)
    _mount(b"proc", "/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount(b"tmpfs", "/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, SHM_OPTIONS)


def set_limits(spec: dict) -> None:
    cpu_s = spec["cpu_s"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_AS, (spec["as_bytes"], spec["as_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize"], spec["fsize"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if spec["cpu"] is not None:
        os.sched_setaffinity(0, {spec["cpu"]})


def drop_privileges() -> None:
    """Empty the bounding set (kept across exec) and this process's own capability sets."""
    if os.geteuid() == 0:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last_cap = int(f.read())
        for cap in range(last_cap + 1):
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
        header = (ctypes.c_uint32 * 2)(CAP_VERSION_3, 0)
        _check(_libc.capset(header, (ctypes.c_uint32 * 6)()), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def probe(spec: dict) -> int:
    """0 when the isolation the parent asked for is really in force."""
    expect = spec["probe"]
    if expect["canary"] and os.path.exists(expect["canary"]):
        return 1  # a file outside the view is visible
    if expect["fs"]:
        outside = spec["workdir"].rstrip("/") + ".escape"  # a sibling of the working directory
        try:
            open(outside, "w").close()
            os.remove(outside)
            return 1
        except OSError:
            pass
        try:
            _set_readonly("/", False, recursive=False)
            return 1
        except OSError:
            pass
        open("inside", "w").close()
    if expect["net"]:
        try:
            socket.create_connection(("1.1.1.1", 80), timeout=1).close()
            return 1
        except OSError:
            pass
    return 0


def _to_json(obj: object) -> object:
    if hasattr(obj, "tolist"):  # numpy arrays and numpy scalars
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")


def _last_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def call_candidate(entry: str, kwargs: dict, module_globals: dict | None = None) -> dict:
    """{"value": v} | {"error": one line} | {"bad": one line}. SystemExit is not caught."""
    try:
        spec = importlib.util.spec_from_file_location("candidate", "candidate.py")
        module = importlib.util.module_from_spec(spec)
        module.__dict__.update(module_globals or {})
        sys.modules["candidate"] = module
        spec.loader.exec_module(module)
        fn = getattr(module, entry, None)
        if not callable(fn):
            return {"error": f"candidate defines no function {entry!r}"}
        value = fn(**kwargs)
    except Exception as exc:
        traceback.print_exc()
        return {"error": _last_line(exc)}
    try:
        return {"value": json.loads(json.dumps(value, default=_to_json))}
    except (TypeError, ValueError, RecursionError) as exc:
        return {"bad": f"return value is not JSON-serializable: {_last_line(exc)}"}


def call(spec: dict) -> int:
    nonce, _, kwargs_json = sys.stdin.buffer.read().partition(b"\n")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the candidate must not be able to seek back and read the nonce
    os.close(devnull)
    result_fd = spec["result_fd"]
    os.set_inheritable(result_fd, False)
    sys.dont_write_bytecode = True
    payload = json.loads(kwargs_json)
    outcome = call_candidate(spec["entry"], payload["kwargs"], payload["globals"])
    line = nonce + b" " + json.dumps(outcome).encode() + b"\n"
    while line:
        line = line[os.write(result_fd, line):]
    return 0 if "value" in outcome else 1


def _children() -> list[int]:
    me, kids = os.getpid(), []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me:
            kids.append(int(name))
    return kids


def kill_leftovers() -> None:
    """SIGKILL and reap every process still below us. Our children's pids cannot be reused
    until we reap them, so this never hits a stranger."""
    while kids := _children():
        for pid in kids:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def run_candidate(spec: dict) -> None:
    """In the forked child: exec the program, or call the function and exit."""
    _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # SIGKILL if the driver dies (no PID namespace)
    if spec["mode"] == "exec":
        # Python ignores these and exec keeps ignored signals; C++ must die at the size cap
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        try:
            os.execvp(spec["cmd"][0], spec["cmd"])
        except OSError as exc:
            print(f"cannot execute {spec['cmd'][0]}: {exc}", file=sys.stderr)
            os._exit(127)
    code = call(spec)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip the candidate's atexit hooks and non-daemon threads


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        if spec["view"]:
            hide_files(spec["view"], spec["workdir"])
        elif spec["fs"]:
            isolate_filesystem(spec["workdir"])
        if spec["view"] or spec["fs"]:
            os.chdir(spec["workdir"])  # re-enter through the new, writable bind mount
        set_limits(spec)
        drop_privileges()
    except OSError as exc:
        print(f"sandbox setup failed: {exc}", file=sys.stderr)
        os._exit(SETUP_FAILED)
    if spec["mode"] == "probe":
        os._exit(probe(spec))
    # Stay as process 1 of the PID namespace and run the candidate as process 2: the kernel
    # ignores signals that process 1 sends itself (kill(getpid(), SIGKILL), abort()), which
    # would change how a candidate dies. Non-dumpable: /proc/1/fd is closed to the candidate.
    # As a subreaper, orphans the candidate leaves (double forks) stay below us, where the
    # parent's tree walk and kill_leftovers() find them even without a PID namespace.
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    pid = os.fork()
    if pid == 0:
        os.close(spec["status_fd"])
        run_candidate(spec)
    _, status = os.waitpid(pid, 0)
    kill_leftovers()
    os.write(spec["status_fd"], str(status).encode())  # the true wait status, for the parent
    os._exit(0)


if __name__ == "__main__":
    main()

"""What a sandboxed run may use (`Limits`) and what it reports (`SandboxResult`)."""

from __future__ import annotations

from dataclasses import dataclass


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


DEFAULT_LIMITS = Limits()

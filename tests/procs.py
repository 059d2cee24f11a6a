"""Processes a test starts: each is killed, with its whole group, when the test ends."""

import os
import signal
import subprocess
from contextlib import contextmanager, suppress


@contextmanager
def started(cmd: list[str], **popen_kwargs):
    """Popen in a session of its own; on leaving (a failed assert, a timeout) its whole
    process group is killed, so a test never leaves what it started running."""
    proc = subprocess.Popen(cmd, start_new_session=True, **popen_kwargs)
    try:
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()

"""Waiting on other threads' work so that Ctrl-C is handled at once.

Python raises KeyboardInterrupt only in the main thread, and only once that thread runs
again. When SIGINT is handled by another thread (the kernel may hand a process-directed
signal to any thread that does not block it), a main thread blocked in an untimed wait does
not wake: Ctrl-C then waits for the work itself, a minute or an hour (tests/test_waiting.py
shows both). So the main thread waits in short slices here, and the end of each slice lets
a pending KeyboardInterrupt be raised.
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future, wait

SLICE_S = 0.1


def wait_futures(futures: Collection[Future], timeout: float | None = None,
                 return_when: str = ALL_COMPLETED) -> tuple[set[Future], set[Future]]:
    """`concurrent.futures.wait`, in slices of SLICE_S seconds: same arguments, same result."""
    remaining = timeout
    while True:
        slice_s = SLICE_S if remaining is None else max(0.0, min(SLICE_S, remaining))
        done, not_done = wait(futures, slice_s, return_when)
        if not not_done or _met(done, return_when) or remaining is not None and remaining <= 0:
            return done, not_done
        if remaining is not None:
            remaining -= slice_s


def _met(done: set[Future], return_when: str) -> bool:
    if return_when == FIRST_COMPLETED:
        return bool(done)
    if return_when == FIRST_EXCEPTION:
        return any(not f.cancelled() and f.exception() is not None for f in done)
    return False

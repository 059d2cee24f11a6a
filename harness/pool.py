"""A bounded pool that evaluates a batch of candidates in parallel through the sandbox.

Threads only wait on sandboxed child processes (the sandbox enforces every limit from its
own polling loop), so a stuck candidate never holds a thread we cannot stop: on an error or
Ctrl-C we kill every child this pool started and the threads return.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from harness.sandbox import _local, kill_all


class EvalPool:
    """Bounded pool for evaluating a batch of candidates in parallel."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self._slots = itertools.count()  # one per worker thread, for life: its CPU
        self._cancel = threading.Event()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox")

    def _call(self, fn: Callable, item: object) -> object:
        if getattr(_local, "cancel", None) is not self._cancel:  # a new worker thread
            _local.cancel = self._cancel
            _local.cpu = self._cpus[next(self._slots) % len(self._cpus)] if self._cpus else None
        return fn(item)

    def map(self, fn: Callable, items: Iterable) -> list:
        """fn(item) for every item, at most `workers` at once; results in input order.

        If fn raises, or Ctrl-C arrives while waiting, every child started by this pool is
        killed, the rest is cancelled, and the first exception (in input order) propagates."""
        futures = []
        try:
            futures += [self._executor.submit(self._call, fn, item) for item in items]
            wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                if f.done() and f.exception() is not None:
                    raise f.exception()
            return [f.result() for f in futures]
        except BaseException:
            self._cancel.set()
            for f in futures:
                f.cancel()
            kill_all(self._cancel)
            wait(futures)
            self._cancel.clear()
            raise

    def close(self) -> None:
        self._cancel.set()
        kill_all(self._cancel)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EvalPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

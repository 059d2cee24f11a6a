"""Pools that evaluate a batch of candidates in parallel through the sandbox.

`EvalPool` runs them here on threads; `RayEvalPool` runs each as a Ray task (`--set
eval_executor=ray`), still inside the sandbox on whichever worker takes it. `make_pool(kind,
workers)` picks one; both have `map(fn, items)` with results in input order.

Threads only wait on sandboxed child processes (the sandbox enforces every limit from its
own polling loop), so a stuck candidate never holds a thread we cannot stop: on an error or
Ctrl-C we kill every child this pool started and the threads return.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor

from harness.base.waiting import wait_futures
from harness.sandbox.ray_session import RaySession
from harness.sandbox.runner import WorkerSlot, bind_worker, kill_all, worker_slot


class EvalPool:
    """Bounded pool for evaluating a batch of candidates in parallel."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self._slots = itertools.count()  # one per worker thread, for life: its CPU
        self._cancel = threading.Event()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox")

    def _call(self, fn: Callable, item: object) -> object:
        if worker_slot().cancel is not self._cancel:  # a new worker thread
            cpu = self._cpus[next(self._slots) % len(self._cpus)] if self._cpus else None
            bind_worker(WorkerSlot(self._cancel, cpu))
        return fn(item)

    def map(self, fn: Callable, items: Iterable) -> list:
        """fn(item) for every item, at most `workers` at once; results in input order.

        If fn raises, or Ctrl-C arrives while waiting, every child started by this pool is
        killed, the rest is cancelled, and the first exception (in input order) propagates."""
        futures = []
        try:
            futures += [self._executor.submit(self._call, fn, item) for item in items]
            wait_futures(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                if f.done() and f.exception() is not None:
                    raise f.exception()
            return [f.result() for f in futures]
        except BaseException:
            self._cancel.set()
            for f in futures:
                f.cancel()
            kill_all(self._cancel)  # kill first, then wait for the threads to see it
            wait_futures(futures)
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


class RayEvalPool:
    """fn(item) for each item as a Ray task (one CPU each), on the cluster this process is
    connected to, else a local Ray started here and shut down on close. The sandbox runs on
    the worker: its limits, process-tree kill and scrubbed environment travel with the task.
    `workers` caps the tasks in flight (None: as many as the cluster takes)."""

    def __init__(self, workers: int | None = None):
        self.session = RaySession(os.environ.get("RAY_ADDRESS"))
        self.workers = workers
        self._task = self.session.ray.remote(num_cpus=1)(_apply)

    def map(self, fn: Callable, items: Iterable) -> list:
        ray = self.session.ray
        fn_ref = ray.put(fn)  # shipped once per batch, not once per item
        items = list(items)
        refs: list = []
        try:
            for item in items:
                if self.workers and len(refs) >= self.workers:
                    ray.wait(refs, num_returns=len(refs) - self.workers + 1)
                refs.append(self._task.remote(fn_ref, item))
            return ray.get(refs)
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RayEvalPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _apply(fn: Callable, item: object) -> object:
    return fn(item)


def make_pool(kind: str, workers: int | None = None) -> EvalPool | RayEvalPool:
    """The evaluation pool of `Config.eval_executor`: "local" or "ray"."""
    if kind == "ray":
        return RayEvalPool(workers)
    if kind != "local":
        raise ValueError(f"unknown eval_executor {kind!r}; choose local or ray")
    return EvalPool(workers)

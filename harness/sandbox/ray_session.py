"""Joining a Ray cluster, or starting a local one, for whoever needs Ray: the evaluation
pool (`pool.RayEvalPool`) and the lab's Ray executor. Ray's usage statistics are off. A
local Ray runs its workers at niceness 0, not Ray's default 15: with the default, another
job on the machine (two busy processes on 2 cores) left our workers ~6% of a core each and
an 11-second experiment took 200 s."""

from __future__ import annotations

import os

from harness.base.errors import UserError, first_line


class RayError(UserError):
    """Ray cannot be joined at the given address; one line."""


class RaySession:
    """Join the cluster at `address` ("auto" or HOST:PORT), or start a local Ray sized to this
    machine (shut down on exit). Already connected (inside a Ray job): used as it is."""

    def __init__(self, address: str | None = None, quiet: bool = True):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import logging

        import ray

        self.ray, self.owner = ray, False
        if ray.is_initialized():
            return
        kwargs = {"logging_level": logging.WARNING, "log_to_driver": not quiet}
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:  # our jobs are the work: Ray's default worker niceness (15) starves them
                os.environ.setdefault("RAY_worker_niceness", "0")  # on a busy machine
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **kwargs)
        except ConnectionError as err:
            raise RayError(f"cannot join the Ray cluster at {address}: "
                           f"{first_line(str(err))}") from None
        self.owner = True

    def close(self) -> None:
        if self.owner and self.ray.is_initialized():
            self.ray.shutdown()

    def __enter__(self) -> RaySession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

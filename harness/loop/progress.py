"""The live progress display of a run: one bar of steps with the best score and throughput."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.base.records import StepRow
from harness.base.scores import better
from harness.env import format_score


class StepProgress:
    """A rich progress bar over steps; a no-op when disabled (tests, piped output)."""

    def __init__(self, total: int, done: int, env, enabled: bool = True):
        self.env = env
        self.progress = Progress(
            TextColumn("[bold]{task.fields[label]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best {task.fields[best]} ({task.fields[direction]})"),
            TextColumn("valid {task.fields[valid]}"), TextColumn("{task.fields[rps]} rollouts/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), disable=not enabled, transient=False)
        self.task = self.progress.add_task(
            "steps", total=total, completed=done, label=f"{env.name} steps", best="-",
            direction=f"{better(env.direction)} is better",
            valid="-", rps="-")

    def __enter__(self) -> StepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, step: int, row: StepRow) -> None:
        self.progress.update(self.task, completed=step + 1, best=format_score(row.score_best),
                             valid=f"{row.valid_frac:.0%}", rps=f"{row.rollouts_per_s:.2f}")

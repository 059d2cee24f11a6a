"""The live progress of a run: a bar of steps in a terminal, one plain line per step in a log.

In a terminal, rich draws one bar with the best score and throughput. When stderr is not a
terminal (a log file, nohup, a Claude Code tool call) a bar would collapse to `0:… 0:…`, so
each finished step prints one line instead: arm, seed, step k/N, best so far, valid share,
seconds per step and the ETA.
"""

from __future__ import annotations

import sys

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
    """A bar over steps (terminal) or a line per step (log); a no-op when disabled."""

    def __init__(self, total: int, done: int, env, enabled: bool = True, label: str = ""):
        self.env, self.total, self.label = env, total, label or env.name
        self.step_seconds: list[float] = []
        console = Console(stderr=True)
        self.plain = enabled and not console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.fields[label]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best {task.fields[best]} ({task.fields[direction]})"),
            TextColumn("valid {task.fields[valid]}"), TextColumn("{task.fields[rps]} rollouts/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=not enabled or self.plain, transient=False)
        self.task = self.progress.add_task(
            "steps", total=total, completed=done, label=f"{self.label} steps", best="-",
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
        if self.plain:
            print(self.line(step, row), file=sys.stderr, flush=True)

    def line(self, step: int, row: StepRow) -> str:
        """`erdos full s0: step 3/8, best 0.4521 (lower is better), valid 83%, 41.2 s/step,
        ETA 3m26s`."""
        self.step_seconds.append(row.time_step_s)
        per_step = sum(self.step_seconds) / len(self.step_seconds)
        eta = round(per_step * (self.total - step - 1))
        return (f"{self.label}: step {step + 1}/{self.total}, best "
                f"{format_score(row.score_best)} ({better(self.env.direction)} is better), "
                f"valid {row.valid_frac:.0%}, {row.time_step_s:.1f} s/step, "
                f"ETA {eta // 60}m{eta % 60:02d}s")

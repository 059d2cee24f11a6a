"""Overnight sweeps: experiments one after another, each proposed by the review of the last.

    root = start_sweep("tune c_puct on toy", root=reports_root(), experiments=3, hours=8)
    run_sweep(root)            # also what `harness sweep --resume ROOT` calls

    <ts>-sweep-<slug>/
      sweep.json   the state (sweep_state.py): one writer, atomic, statuses and heartbeats
      SWEEP.md     the morning digest; ledger.csv (spend); figures/best_across_experiments.png
      01-<slug>/   an experiment folder: plan.json, experiment.py, data/, report.md,
                   review.json + review.md (the proposal that made 02-...)
      02-<slug>/   ...

Each turn of the loop makes one decision: run the pending or interrupted experiment
(`run_experiment` skips finished arm x seed runs and resumes the rest from their checkpoints);
else review the last one (once: review.json is reused on resume, so no review is paid twice);
stop when the reviewer says the question is answered, at N experiments, or when the next
experiment's estimated time exceeds what is left; else write the next folder from the
proposal's validated plan. A failing experiment is recorded with its error (error.txt holds
the traceback) and the next proposal builds on the last experiment that has a score.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from pathlib import Path

from harness.base.errors import one_line
from harness.lab.executors import ExecutorSpec
from harness.lab.experiment import new_experiment_dir, run_experiment, slugify, write_experiment
from harness.lab.folders import experiment_folder
from harness.lab.plan import validate_plan
from harness.lab.planner import make_plan
from harness.lab.proposal import Result, open_comments, read_result
from harness.lab.report import read_csv
from harness.lab.reviewer import (
    Review,
    load_review,
    review_experiment,
    review_is_current,
    write_review,
)
from harness.lab.sweep_digest import memory_text, write_digest
from harness.lab.sweep_state import (
    STATE_FILE,
    Entry,
    Store,
    SweepError,
    SweepState,
    load_state,
    owning,
    write_state,
)
from harness.loop.model import check_model_name, default_device

HEARTBEAT_S = 10.0
# seconds per rollout before the sweep has timed one of its own experiments: smollm2 on 2 CPU
# cores (planner.py's note) or a GPU; the tiny test model is far faster
PRIOR_S_PER_ROLLOUT = {"cpu": 6.0, "cuda": 1.0, "tiny": 0.5}


def start_sweep(request: str, *, root: Path, experiments: int = 5, hours: float = 8.0,
                reviewer: str = "auto", budget: str | None = None,
                model: str | None = None) -> Path:
    """Plan the first experiment and write the sweep folder; nothing runs yet. Raises a
    one-line PlanError / SweepError (before any folder is made) for bad input."""
    if experiments < 1 or not hours > 0:
        raise SweepError("a sweep needs --experiments >= 1 and --hours > 0")
    device = default_device()
    plan = make_plan(request, budget, model, None, device, planner=reviewer).to_dict()
    check_model_name(plan["model"])
    state = SweepState(request, plan["env"], plan["budget"], plan["model"], device, reviewer,
                       experiments,
                       hours, time.strftime("%Y-%m-%d %H:%M:%S"))
    need = estimate_s(plan, state)
    if need > state.time_left_s:
        raise SweepError(f"the first experiment needs about {need / 60:.0f} min, more than "
                         f"--hours {hours:g}")
    folder = new_experiment_dir(Path(root), f"sweep {request}")
    write_state(folder, state)
    add_experiment(Store(folder, state), plan, "planner")
    write_digest(folder, state)
    return folder


def run_sweep(root: Path, *, run=run_experiment, progress: bool = True,
              experiments: int | None = None, hours: float | None = None,
              heartbeat_s: float = HEARTBEAT_S, max_retries: int = 2,
              executor: ExecutorSpec | None = None) -> Path:
    """Run (or resume) the sweep in `root` until it stops; returns SWEEP.md. `experiments`
    and `hours` raise the sweep's limits (a finished sweep can be extended). `executor` says
    where each experiment's jobs run (default: here, one after another)."""
    if executor is not None:
        run = functools.partial(run, executor=executor)
    with owning(root, heartbeat_s) as store:
        with store.edit() as state:
            state.max_experiments = experiments or state.max_experiments
            state.hours = hours or state.hours
            if (experiments or hours) and state.status == "finished":
                state.status, state.stop_reason = "running", ""
        while store.state.status == "running":
            advance(store, run, progress, max_retries)
            write_digest(store.root, store.state)
    return write_digest(Path(root), load_state(root))


def continue_sweep(root: Path, *, experiments: int | None = None, hours: float | None = None,
                   progress: bool = True, run=run_experiment,
                   executor: ExecutorSpec | None = None) -> Path:
    """Extend a finished sweep (`harness sweep --continue`): room for `experiments` more
    (default 1), and comments left on its experiments since the last review are picked up:
    that review is redone (the old one kept as review.previous.json) so its proposal answers
    them. Returns SWEEP.md."""
    root = Path(root)
    state = load_state(root)
    if state.status != "finished":
        raise SweepError(f"the sweep {root} has not finished; use --resume")
    last = root / state.experiments[-1].folder
    results = results_of(root, state)
    pending = open_comments(results[-1], results[:-1])
    if (last / "review.json").exists() and pending:
        answered = {r["comment"] for r in load_review(last).proposal.comment_responses}
        if set(pending) - answered:
            os.replace(last / "review.json", last / "review.previous.json")
    return run_sweep(root, run=run, progress=progress, hours=hours, executor=executor,
                     experiments=len(state.experiments) + (experiments or 1))


def advance(store: Store, run, progress: bool, max_retries: int) -> None:
    """One decision of the sweep (see the module docstring)."""
    state = store.state
    entry = next((e for e in state.experiments if e.status in ("pending", "running")), None)
    if entry is not None:
        if state.time_left_s <= 0:
            return finish(store, "the time budget is spent")
        return run_entry(store, entry, run, progress)
    last = state.experiments[-1]
    review = review_entry(store, last, max_retries, progress)
    if review.proposal.stop:
        return finish(store, f"the reviewer proposes to stop ({review.proposal.title})")
    if len(state.experiments) >= state.max_experiments:
        return finish(store, f"{state.max_experiments} experiment(s) run")
    need = estimate_s(review.plan, state)
    if need > state.time_left_s:
        return finish(store, f"the next experiment needs about {need / 60:.1f} min and "
                             f"{max(state.time_left_s, 0) / 60:.1f} min are left")
    add_experiment(store, review.plan, f"review of {last.folder}")


def finish(store: Store, reason: str) -> None:
    with store.edit() as state:
        state.status, state.stop_reason = "finished", reason


def run_entry(store: Store, entry: Entry, run, progress: bool) -> None:
    folder = store.root / entry.folder
    with store.edit() as state:
        entry.status, entry.pid, entry.attempts = "running", os.getpid(), entry.attempts + 1
        entry.heartbeat, entry.started = time.time(), entry.started or _now()
    if progress:
        print(f"[sweep {entry.index}/{state.max_experiments}] {entry.title} "
              f"({'resumed' if entry.attempts > 1 else 'started'}) -> {folder}", file=sys.stderr)
    error = ""
    try:
        run(folder, progress=progress)
    except Exception as err:  # any failure of one experiment is recorded; the sweep goes on
        error = one_line(err)
        (folder / "error.txt").write_text(traceback.format_exc())
    tokens, rollouts = csv_spend(folder)
    with store.edit():
        entry.status, entry.error, entry.ended = ("failed" if error else "done"), error, _now()
        entry.ledger.tokens, entry.ledger.rollouts = tokens, rollouts
    if progress and error:
        print(f"[sweep] {entry.folder} failed: {error}", file=sys.stderr)


def review_entry(store: Store, entry: Entry, max_retries: int, progress: bool = False) -> Review:
    """The review of a finished experiment: review.json when it exists, else a new one."""
    folder = store.root / entry.folder
    if (folder / "review.json").exists():
        review = load_review(folder)
    else:
        results = results_of(store.root, store.state)
        i = [e.index for e in store.state.experiments].index(entry.index)
        review = review_experiment(results[i], results[:i], reviewer=store.state.reviewer,
                                   budget=store.state.budget, question=store.state.request,
                                   memory=memory_text(store.root, store.state, results),
                                   track=(store.state.track, store.state.tracks),
                                   max_retries=max_retries)
        write_review(folder, review)
    with store.edit():
        entry.reviewer, entry.stop = review.reviewer, review.proposal.stop
        entry.ledger.reviewer_tokens = review.usage.get("tokens_in", 0) + review.usage.get(
            "tokens_out", 0)
        entry.ledger.reviewer_usd = review.usage.get("cost_usd", 0.0)
    if progress:
        print(f"[sweep] review of {entry.folder} ({review.reviewer}): "
              f"{'stop' if review.proposal.stop else review.proposal.title}", file=sys.stderr)
    return review


def add_experiment(store: Store, plan: dict, source: str) -> Entry:
    """Write the next experiment's folder (NN-<slug>, plan.json, experiment.py), then its entry.
    A folder left by a crash between the two is adopted, so numbers never shift."""
    index = len(store.state.experiments) + 1
    left = sorted(store.root.glob(f"{index:02d}-*"))
    folder = left[0] if left else store.root / f"{index:02d}-{slugify(plan['request'])}"
    folder.mkdir(exist_ok=True)
    spec = validate_plan(plan)
    write_experiment(folder, spec)
    entry = Entry(index, folder.name, spec.request, source)
    with store.edit() as state:
        state.experiments.append(entry)
    return entry


def estimate_s(plan: dict, state: SweepState) -> float:
    """Seconds `plan` should take: its rollouts times the sweep's measured seconds per rollout
    (wall time / rollouts of its finished experiments, so model loads are included), or a
    prior before the sweep has timed anything."""
    done = [e.ledger for e in state.experiments if e.status == "done" and e.ledger.rollouts]
    if done:
        rate = sum(d.wall_s for d in done) / sum(d.rollouts for d in done)
    else:
        rate = PRIOR_S_PER_ROLLOUT["tiny" if state.model == "tiny" else
                                   "cuda" if state.device.startswith("cuda") else "cpu"]
    return plan["rollouts_total"] * rate


def csv_spend(folder: Path) -> tuple[int, int]:
    """Generated tokens (steps.csv) and rollouts (rollouts.csv) recorded in `folder`."""
    steps = read_csv(folder / "data" / "steps.csv", ["tokens/generated"])
    rollouts = read_csv(folder / "data" / "rollouts.csv", ["arm"])
    tokens = int(steps["tokens/generated"].sum()) if len(steps) else 0
    return tokens, len(rollouts)


def results_of(root: Path, state: SweepState) -> list[Result]:
    return [read_result(Path(root) / e.folder, e.index, e.status, e.error)
            for e in state.experiments]


def review_folder(folder: Path, reviewer: str = "auto", again: bool = False) -> Path:
    """review.md of an experiment folder (or of a sweep's latest finished experiment),
    reviewing it first when it has no review yet (or `again`)."""
    folder = Path(folder)
    if (folder / STATE_FILE).exists():
        finished = [e for e in load_state(folder).experiments if e.status in ("done", "failed")]
        if not finished:
            raise SweepError(f"no experiment of the sweep {folder} has finished yet")
        folder = folder / finished[-1].folder
    experiment_folder(folder)
    if review_is_current(folder) and not again:  # inputs unchanged: re-render review.json
        return write_review(folder, load_review(folder))
    kwargs: dict = {"reviewer": reviewer}
    if (folder.parent / STATE_FILE).exists():  # inside a sweep: the reviewer sees its history
        state = load_state(folder.parent)
        results = results_of(folder.parent, state)
        i = next(k for k, e in enumerate(state.experiments) if e.folder == folder.name)
        current, history = results[i], results[:i]
        kwargs |= {"budget": state.budget, "question": state.request,
                   "memory": memory_text(folder.parent, state, results[:i + 1])}
    else:
        current, history = read_result(folder), []
    return write_review(folder, review_experiment(current, history, **kwargs))


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")

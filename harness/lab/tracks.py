"""Parallel research tracks: K sweeps side by side, one OS process each, one digest over them.

    root = start_tracks(["tune c_puct on toy"], root=reports_root(), tracks=3, experiments=4)
    run_tracks(root)           # also what `harness sweep --resume ROOT` calls on a tracks root

    <ts>-tracks-<slug>/
      tracks.json          the tracks: index, folder, request, last error (atomic, one writer)
      TRACKS.md            the digest comparing the tracks; tracks.csv (one row per track);
                           figures/tracks_best.png (best score so far per track)
      track-1-<slug>/      an ordinary sweep folder (sweep.py): `harness sweep --resume` runs
      track-2-<slug>/      it alone; its sweep.json says it is track k of K

Several requests make one track each; one request with `tracks=K` makes K tracks of the same
question. Those must not all run the same thing: track k's first experiment runs the
planner's plan on its own seeds (an independent replicate, not a copy), and its reviewer is
told it is track k of K (the offline reviewer then takes its k-th direction; Claude is asked
to prefer a less obvious ablation). Every track is planned before the tracks folder appears:
bad input is one line (SweepError / PlanError) and leaves no folder.

`run_tracks` runs each unfinished track's `run_sweep` in a `ProcessPoolExecutor` ("spawn":
torch and threads do not survive a fork), at most `max_parallel` at once. A track that raises
is recorded in tracks.json and the digest while the others go on (a process that dies hard,
e.g. killed for memory, breaks the pool: the other tracks stop too and are resumed later).
Ctrl-C reaches every process of the terminal; the parent cancels queued tracks, waits for the
running ones to save their state, and re-raises. Resuming continues the unfinished tracks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.base.errors import one_line
from harness.base.resources import templates
from harness.base.scores import beats, best_of, better
from harness.base.waiting import wait_futures
from harness.env import env_class
from harness.lab import figures
from harness.lab.experiment import new_experiment_dir, slugify, write_experiment
from harness.lab.folders import read_plan
from harness.lab.plan import validate_plan
from harness.lab.report_text import same_score
from harness.lab.sweep import results_of, run_sweep, start_sweep
from harness.lab.sweep_digest import best_configuration, experiment_rows, write_digest
from harness.lab.sweep_state import SweepError, load_state, write_state

TRACKS_FILE, LOCK_FILE, DIGEST = "tracks.json", "tracks.lock", "TRACKS.md"
GRACE_S = 30.0  # after Ctrl-C: how long running tracks get to stop before they are told again


@dataclass
class Track:
    index: int         # k of K, from 1
    folder: str        # the sweep folder, relative to the tracks root
    request: str
    error: str = ""    # why its last run raised ("" once it ran without raising)


def is_tracks_root(path: Path) -> bool:
    return (Path(path) / TRACKS_FILE).is_file()


def load_tracks(root: Path) -> list[Track]:
    if not is_tracks_root(root):
        raise SweepError(f"{root} is not a tracks folder (no {TRACKS_FILE})")
    return [Track(**t) for t in json.loads((Path(root) / TRACKS_FILE).read_text())["tracks"]]


def write_tracks(root: Path, tracks: list[Track]) -> None:
    """Atomic: a temp file beside it, then renamed over tracks.json."""
    path = Path(root) / TRACKS_FILE
    tmp = path.with_name(f".{TRACKS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": 1, "tracks": [dataclasses.asdict(t) for t in tracks]},
                              indent=2) + "\n")
    os.replace(tmp, path)


# --- start: every track planned in a hidden folder, which then becomes the tracks root ---
def start_tracks(requests: list[str], *, root: Path, tracks: int = 1, **sweep_kwargs) -> Path:
    """Plan every track and write the tracks folder; nothing runs yet. `sweep_kwargs` go to
    each track's `start_sweep` (experiments, hours, reviewer, budget, model): every track
    gets that budget (`hours` counts a track's own running time, so a track queued behind
    `max_parallel` others still gets all of it). Raises a one-line SweepError / PlanError
    before any folder is made."""
    requests = [str(r) for r in requests]
    if not requests or not all(r.strip() for r in requests):
        raise SweepError("give a REQUEST for the tracks (or several, one track each)")
    if tracks < 1:
        raise SweepError("--tracks must be >= 1")
    if len(requests) > 1 and tracks not in (1, len(requests)):
        raise SweepError(f"{len(requests)} requests make {len(requests)} tracks, one each; "
                         "--tracks K is for K tracks of one request")
    questions = requests if len(requests) > 1 else requests * tracks
    root = Path(root)
    made_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tracks-", dir=root))
    try:
        made = [_start_track(staging, k, len(questions), q, len(requests) == 1, sweep_kwargs)
                for k, q in enumerate(questions, 1)]
        name = requests[0] + (f" and {len(requests) - 1} more" if len(requests) > 1 else "")
        top = new_experiment_dir(root, f"tracks {name}")
        os.replace(staging, top)  # onto the empty folder just made: atomic
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made_root and not any(root.iterdir()):
            root.rmdir()
        raise
    write_tracks(top, made)
    for track in made:  # the digests name the folder the sweeps now live in
        write_digest(top / track.folder, load_state(top / track.folder))
    write_tracks_digest(top)
    return top


def _start_track(staging: Path, k: int, n: int, request: str, same_question: bool,
                 sweep_kwargs: dict) -> Track:
    folder = start_sweep(request, root=staging, **sweep_kwargs)
    name = f"track-{k}-{slugify(request)}"
    folder = folder.rename(staging / name)
    state = load_state(folder)
    state.track, state.tracks = k, n
    write_state(folder, state)
    if same_question and k > 1:
        shift_seeds(folder / state.experiments[0].folder, k)
    return Track(k, name, request)


def shift_seeds(experiment: Path, k: int) -> None:
    """Track k's copy of the first experiment runs seeds n(k-1) .. nk-1 instead of 0 .. n-1,
    so that K tracks of one question replicate it rather than repeat it."""
    plan = read_plan(experiment)
    n = len(plan["seeds"])
    plan["seeds"] = [s + n * (k - 1) for s in plan["seeds"]]
    write_experiment(experiment, validate_plan(plan))


# --- run: one process per track ---
def run_tracks(root: Path, *, max_parallel: int | None = None, **run_kwargs) -> Path:
    """Run (or resume) every unfinished track of `root` side by side; returns TRACKS.md.
    `run_kwargs` go to each track's `run_sweep` (progress, executor, experiments, hours, ...);
    given `experiments` or `hours`, finished tracks are extended too."""
    from filelock import FileLock, Timeout

    root = Path(root)
    tracks = load_tracks(root)
    if max_parallel is not None and max_parallel < 1:
        raise SweepError("the tracks run at once (max_parallel) must be >= 1")
    extend = bool(run_kwargs.get("experiments") or run_kwargs.get("hours"))
    todo = [t for t in tracks if extend or load_state(root / t.folder).status != "finished"]
    lock = FileLock(str(root / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SweepError(f"{root} is being run by another process") from None
    try:
        if todo:
            _run_in_pool(root, tracks, todo, min(len(todo), max_parallel or len(todo)),
                         run_kwargs)
    finally:  # also after Ctrl-C: the digest shows where each track stopped
        try:
            digest = write_tracks_digest(root)
        finally:
            lock.release()
    return digest


def _run_in_pool(root: Path, tracks: list[Track], todo: list[Track], workers: int,
                 run_kwargs: dict) -> None:
    """The tracks in `todo`, at most `workers` at once. The pool is handed a track only when
    one of its processes is free, so a track starts when the line says so, and after Ctrl-C
    no queued track is left inside the pool to start."""
    say = _printer(run_kwargs.get("progress", True))
    queued, running = deque(todo), {}  # running: Future -> Track
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker,
                             initargs=(max(1, (os.cpu_count() or 1) // workers),)) as pool:
        try:
            while queued or running:
                while queued and len(running) < workers:
                    track = queued.popleft()
                    running[pool.submit(_run_track, root / track.folder, track.index,
                                        run_kwargs)] = track
                    say(f"track {track.index} started: {track.request} -> {root / track.folder}")
                done, _ = wait_futures(running, return_when=FIRST_COMPLETED)
                for future in done:
                    track = running.pop(future)
                    track.error = _error_of(future)
                    write_tracks(root, tracks)
                    say(f"track {track.index} " + (f"failed: {track.error}" if track.error
                                                   else f"finished: {_stop_reason(root, track)}"))
                    write_tracks_digest(root)
                if _pool_broken(done) and queued:
                    say(f"a track's process died, so the pool stopped; tracks "
                        f"{', '.join(str(t.index) for t in queued)} did not start (resume)")
                    queued.clear()
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            if wait_futures(running, timeout=GRACE_S)[1]:  # the interrupt did not reach them
                for child in multiprocessing.active_children():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGINT)
            raise


def _pool_broken(futures) -> bool:
    """A process of the pool died hard (killed, out of memory): the pool takes no more work."""
    return any(f.done() and isinstance(f.exception(), BrokenProcessPool) for f in futures)


def _init_worker(threads: int) -> None:
    """A pool process: idle, it ignores Ctrl-C (only a running track is interrupted); its
    torch uses its share of the cores unless OMP_NUM_THREADS says otherwise."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def _run_track(folder: Path, index: int, run_kwargs: dict) -> str:
    """One track's sweep, in a pool process; its output lines start with `[track k]`."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (_Prefixed(s, f"[track {index}] ") for s in streams)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return str(run_sweep(folder, **run_kwargs))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.stdout, sys.stderr = streams


class _Prefixed:
    """A text stream that starts every line with `prefix`, so that K tracks' output reads.
    It says it is no terminal, so progress bars print their last state instead of redrawing."""

    def __init__(self, stream, prefix: str):
        self.stream, self.prefix, self.line_start = stream, prefix, True

    def write(self, text: str) -> int:
        out = []
        for line in text.splitlines(keepends=True):
            out.append((self.prefix if self.line_start else "") + line)
            self.line_start = line.endswith("\n")
        self.stream.write("".join(out))
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):  # encoding, errors, fileno ...: the stream's own
        return getattr(self.stream, name)


def _error_of(future: Future) -> str:
    err = future.exception()
    if err is None:
        return ""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    return one_line(err)


def _stop_reason(root: Path, track: Track) -> str:
    state = load_state(root / track.folder)
    return state.stop_reason or state.status


def _printer(enabled: bool):
    def say(line: str) -> None:
        if enabled:
            print(f"[tracks] {line}", file=sys.stderr, flush=True)
    return say


# --- the digest: TRACKS.md, tracks.csv, figures/tracks_best.png ---
def track_summary(root: Path, track: Track) -> dict:
    """One track as the digest shows it: the tracks.csv row, its experiments' rows
    (sweep_digest.experiment_rows) and its best configuration."""
    folder = Path(root) / track.folder
    state = load_state(folder)
    results = results_of(folder, state)
    env = env_class(state.env)
    rows = experiment_rows(state, results)
    best = best_configuration(results)
    values = [r["mean_best"] for r in rows if r["mean_best"] is not None]
    value = best_of(values, env.direction)
    status = "failed" if track.error else state.status
    return {
        "row": {"track": track.index, "request": track.request, "folder": track.folder,
                "env": state.env, "objective": env.objective, "direction": env.direction,
                "status": status,
                "experiments": sum(e.status in ("done", "failed") for e in state.experiments),
                "best_score": value, "best_experiment": best["folder"] if best else "",
                "best_arm": best["arm"] if best else "", "stop_reason": state.stop_reason,
                "error": track.error},
        "rows": rows, "best": best, "state": state, "env": env}


def write_tracks_digest(root: Path) -> Path:
    """(Re)write TRACKS.md, tracks.csv and figures/tracks_best.png from tracks.json and the
    tracks' sweep folders."""
    root = Path(root)
    summaries = [track_summary(root, t) for t in load_tracks(root)]
    table = pd.DataFrame([s["row"] for s in summaries])
    table.to_csv(root / "tracks.csv", index=False)
    figure = figures.best_across_tracks(
        [(f"track {s['row']['track']}", s["env"].objective, s["env"].direction,
          [(r["index"], r["mean_best"]) for r in s["rows"]]) for s in summaries],
        root / "figures" / "tracks_best.png")
    leaders = {}  # per env: the track with the best score
    for s in summaries:
        row, lead = s["row"], leaders.get(s["row"]["env"])
        if row["best_score"] is not None and (lead is None or (
                beats(row["best_score"], lead["row"]["best_score"], row["direction"]))):
            leaders[row["env"]] = s
    for lead in leaders.values():  # tracks level with the leader: a tie, no better track
        lead["tied_tracks"] = [t["row"]["track"] for t in summaries
                               if t["row"]["env"] == lead["row"]["env"]
                               and t["row"]["best_score"] is not None
                               and same_score(t["row"]["best_score"], lead["row"]["best_score"])]
    path = root / DIGEST
    path.write_text(templates().get_template("tracks.md.j2").render(
        root=root, tracks=summaries, leaders=list(leaders.values()),
        finished=sum(s["row"]["status"] == "finished" for s in summaries),
        figure=figure.relative_to(root).as_posix() if figure else None,
        better=better, now=time.strftime("%Y-%m-%d %H:%M")))
    return path

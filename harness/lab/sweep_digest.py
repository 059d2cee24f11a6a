"""A sweep's morning digest and memory, rendered from sweep.json and the experiment folders.

- SWEEP.md: the question; one row per experiment (what changed, headline vs the best so far,
  status, wall time, cost); the best configuration; a figure of the best score across
  experiments; the reviewer's final summary; the memory; the budget ledger.
- ledger.csv: each experiment's spend (wall, CPU and GPU seconds, generated tokens, reviewer
  tokens and dollars) and the sweep's total.
- `memory_text`: what was tried, what was learned, dead ends. The reviewer reads it so that
  it does not propose the same thing twice; it is also a section of SWEEP.md, so a person
  reads the same memory (one file, not a second `sweep.md` that differs only in case).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

from harness.base.resources import templates
from harness.base.scores import beats, better
from harness.env import env_class
from harness.lab import figures
from harness.lab.offline_reviewer import tuned_keys
from harness.lab.proposal import Result, read_result
from harness.lab.reviewer import Review, load_review
from harness.lab.stats import separated
from harness.lab.sweep_state import Ledger, SweepState

DIGEST = "SWEEP.md"


def headline(result: Result) -> dict | None:
    """The experiment's best arm (by mean best over seeds), or None without a score."""
    ranked = result.ranked()
    return ranked[0] if ranked else None


def _headline_text(result: Result, top: dict | None) -> str:
    """The best arm and its score; a tie at the top is named a tie, not a winner."""
    if top is None:
        return "-"
    tied = result.tied_best()
    if len(tied) > 1:
        return f"tie: {', '.join(f'`{a}`' for a in tied)} {_score(top)}"
    return f"`{top['arm']}` {_score(top)}"


def _score(row: dict) -> str:
    ci = "" if row["n"] < 2 or math.isnan(row["ci95"]) else f" ± {row['ci95']:.3g}"
    return f"{row['mean_best']:.6g}{ci} (n={int(row['n'])})"


def what_changed(plan: dict, previous: dict | None) -> str:
    """The knobs the arms vary, the settings they share, seeds and budget."""
    varied = sorted(tuned_keys(plan))
    values = {k: sorted({str(a["overrides"].get(k, "default")) for a in plan["arms"]})
              for k in varied}
    parts = [f"{k} ∈ {{{', '.join(v)}}}" for k, v in values.items()] or [
        f"arm{'s' if len(plan['arms']) > 1 else ''} {', '.join(a['name'] for a in plan['arms'])}"]
    shared = {k: v for k, v in plan["arms"][0]["overrides"].items() if k not in varied}
    if shared and len(plan["arms"]) > 1:
        parts.append("with " + ", ".join(f"{k}={v}" for k, v in shared.items()))
    parts.append(f"{len(plan['seeds'])} seed(s)")
    if previous is None or previous["budget"] != plan["budget"]:
        parts.append(f"budget {plan['budget']}")
    return "; ".join(parts)


def _duration(seconds: float) -> str:
    return (f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
            if seconds < 7200 else f"{seconds / 3600:.1f} h")


def _cost(ledger: Ledger) -> str:
    parts = [f"CPU {ledger.cpu_s:.0f} s"] + ([f"GPU {ledger.gpu_s:.0f} s"] if ledger.gpu_s else [])
    parts.append(f"{ledger.tokens} tokens")
    if ledger.reviewer_tokens:
        parts.append(f"review {ledger.reviewer_tokens} tokens ${ledger.reviewer_usd:.4f}")
    return ", ".join(parts)


def experiment_rows(state: SweepState, results: list[Result]) -> list[dict]:
    direction = env_class(state.env).direction
    rows, best, previous = [], None, None
    for entry, result in zip(state.experiments, results, strict=True):
        top = headline(result)
        new_best = top is not None and (
            best is None or beats(top["mean_best"], best[1]["mean_best"], direction))
        if new_best:
            best = (entry.index, top)
        status = entry.status + (f" ({entry.error})" if entry.error else "")
        if entry.status == "running":
            status += f", {entry.attempts} attempt(s)"
        rows.append({
            "index": entry.index, "folder": entry.folder,
            "changed": what_changed(result.plan, previous).replace("|", "/"),
            "headline": _headline_text(result, top),
            "best_so_far": (f"{'**new best** ' if new_best else ''}{_score(best[1])} "
                            f"(#{best[0]})") if best else "-",
            "status": status.replace("|", "/"), "wall": _duration(entry.ledger.wall_s),
            "cost": _cost(entry.ledger), "mean_best": top["mean_best"] if top else None})
        previous = result.plan
    return rows


def best_configuration(results: list[Result]) -> dict | None:
    direction = None
    best = None
    for result in results:
        top = headline(result)
        direction = direction or result.direction
        if top and (best is None or beats(top["mean_best"], best[1]["mean_best"], direction)):
            best = (result, top)
    if best is None:
        return None
    result, top = best
    plan = result.plan
    settings = {**plan["settings"], **top["overrides"]}
    sets = " ".join(f"--set {k}={v}" for k, v in settings.items())
    tied = result.tied_best()
    return {"arm": top["arm"], "tied": tied if len(tied) > 1 else [],
            "folder": result.folder.name, "score": _score(top),
            "best_raw": top["best_raw"], "overrides": top["overrides"],
            "settings": plan["settings"], "budget": plan["budget"],
            "command": f"harness discover --env {plan['env']} --model {plan['model']} "
                       f"--budget paper {sets}"}


def memory_text(root: Path, state: SweepState, results: list[Result]) -> str:
    """What was tried, what was learned (each review's reading), dead ends (failures and arms
    worse than the best beyond noise)."""
    tried, learned, dead = [], [], []
    for entry, result in zip(state.experiments, results, strict=False):
        top = headline(result)
        outcome = (f"best {_headline_text(result, top)}" if top else
                   f"failed: {entry.error}" if entry.status == "failed" else entry.status)
        arms = ", ".join(f"{a['name']}={a['overrides']}" for a in result.plan["arms"])
        tried.append(f"- {entry.folder} ({entry.status}): {what_changed(result.plan, None)}; "
                     f"arms {arms}; {outcome}.")
        review = _review(Path(root) / entry.folder)
        if review:
            learned.append(f"- after {entry.folder} ({review.reviewer}): "
                           f"{review.proposal.summary}")
        if entry.status == "failed":
            dead.append(f"- {entry.folder} failed ({entry.error}); its arms are not retried.")
        for row in result.ranked()[1:]:
            if top and separated(top, row):
                dead.append(f"- `{row['arm']}` in {entry.folder}: {_score(row)}, worse than "
                            f"`{top['arm']}` {_score(top)} beyond noise.")
    return "\n".join(["Tried:", *tried, "", "Learned:", *(learned or ["- (no review yet)"]),
                      "", "Dead ends:", *(dead or ["- (none yet)"])])


def _review(folder: Path) -> Review | None:
    return load_review(folder) if (folder / "review.json").exists() else None


def write_ledger(root: Path, state: SweepState) -> Path:
    fields = [f.name for f in dataclasses.fields(Ledger)]
    total = {k: sum(getattr(e.ledger, k) for e in state.experiments) for k in fields}
    path = Path(root) / "ledger.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "folder", "status", *fields])
        for e in state.experiments:
            writer.writerow([e.index, e.folder, e.status,
                             *(round(getattr(e.ledger, k), 6) for k in fields)])
        writer.writerow(["total", "", state.status, *(round(total[k], 6) for k in fields)])
    return path


def write_digest(root: Path, state: SweepState) -> Path:
    """(Re)write SWEEP.md, ledger.csv and the figure from sweep.json and the folders."""
    root = Path(root)
    results = [read_result(root / e.folder, e.index, e.status, e.error)
               for e in state.experiments]
    env = env_class(state.env)
    rows = experiment_rows(state, results)
    figure = figures.best_across_experiments(
        [(r["index"], r["mean_best"]) for r in rows], env.objective, env.direction,
        root / "figures" / "best_across_experiments.png")
    write_ledger(root, state)
    reviews = [r for r in (_review(root / e.folder) for e in state.experiments) if r]
    fields = [f.name for f in dataclasses.fields(Ledger)]
    total = Ledger(**{k: sum(getattr(e.ledger, k) for e in state.experiments) for k in fields})
    path = root / DIGEST
    path.write_text(templates().get_template("sweep.md.j2").render(
        state=state, root=root, env=env, rows=rows,
        better=better(env.direction),
        figure=figure.relative_to(root).as_posix() if figure else None,
        best=best_configuration(results), final=reviews[-1] if reviews else None,
        memory=memory_text(root, state, results), total=total,
        used=_duration(state.time_used_s), cost=_cost, duration=_duration))
    return path

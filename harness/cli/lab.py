"""The commands of the lab: experiments, sweeps, their folders, reviews and the ledger."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from harness.base.config import (
    BUDGETS,
)
from harness.base.errors import UserError
from harness.cli.shell import (
    FOLDER_HELP,
    check_background,
    executor_options,
    executor_spec,
    fail,
    folder_arg,
    main,
    reports_root,
)
from harness.env import ENVS
from harness.lab.offline_planner import KNOBS_HELP
from harness.lab.plan import ABLATIONS


@main.command(epilog=f"Knobs to tune: {KNOBS_HELP}. Ablation arms (for 'ablate' and "
                    f"'compare'): {', '.join(ABLATIONS)}; components: entropic, reuse, "
                    f"training, all. Envs: {', '.join(ENVS)}, aliases such as "
                    f"'circle packing', or a problem file. {FOLDER_HELP}")
@click.argument("request")
@click.option("--budget", type=click.Choice(list(BUDGETS)), default=None, envvar="HARNESS_BUDGET",
              help="Budget of the whole experiment (default: small on CPU, medium on GPU).")
@click.option("--model", default=None, envvar="HARNESS_MODEL",
              help="smollm2 (default), tiny, a HF id or a folder [env HARNESS_MODEL].")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Seeds per arm (default: the budget's).")
@click.option("--dry-run", is_flag=True,
              help="Write the folder, plan and script, and print what they will cost (on "
                   "stderr); run nothing.")
@click.option("--background", is_flag=True,
              help="Start the run detached (output in FOLDER/run.log), print the folder and "
                   "return at once; `harness status FOLDER` says how far it got.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@executor_options
def experiment(request, budget, model, seeds, dry_run, background, quiet, **executor) -> None:
    """Plan REQUEST, write an experiment folder with its script, run it and write the report.

    REQUEST: 'tune <knob> on <env>', 'ablate <component> on <env>', 'does <component> help
    on <env>?', 'compare <arm> vs <arm> on <env>', 'run <env>' (each may add 'with N seeds',
    'for N steps', 'on GPU' or 'on CPU'), or 'like <FOLDER> but with <change>' (e.g. 'group
    size 16', '3 seeds', 'lr 1e-4', 'program actions')."""
    from harness.lab.estimate import plan_table
    from harness.lab.experiment import JobsFailed, create_experiment, run_experiment
    from harness.lab.status import start_in_background

    folder = None
    try:
        spec = executor_spec(**executor)
        check_background(background, spec)
        folder = create_experiment(request, root=reports_root(), budget=budget, model=model,
                                   seeds=seeds)
        if dry_run or background:  # stdout stays the folder alone, for scripts
            click.echo(plan_table(folder), err=True)
        if background:
            start_in_background([sys.executable, str(folder / "experiment.py")], folder)
        elif not dry_run:
            run_experiment(folder, progress=not quiet, executor=spec)
    except UserError as err:
        raise fail(err) from None
    except JobsFailed as err:
        raise click.ClickException(f"{err} (the report in {folder} has the rest; rerun with "
                                   f"python {folder}/experiment.py)") from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted" + (f"; the report in {folder} says which arms finished. "
                                     f"Resume with: python {folder}/experiment.py"
                                     if folder else ""), err=True)
        raise SystemExit(130) from None
    click.echo(str(folder))


@main.command()
def reports() -> None:
    """List experiments, newest first (a sweep's under it): status and best result vs the
    baseline. Each name works wherever a command takes a FOLDER."""
    from harness.lab.report import list_experiments

    found = list_experiments(reports_root())
    if not found:
        click.echo(f"no experiments under {reports_root()} (the reports root: "
                   "./research_reports, or HARNESS_REPORTS_DIR)")
    sweep = None
    for e in found:
        if e["sweep"] and e["sweep"] != sweep:
            click.echo(f"{e['sweep']}/  (sweep)")
        sweep = e["sweep"]
        click.echo(f"{'  ' if sweep else ''}{e['name']}  {e['status']}  {e['best']}")


@main.command(epilog=FOLDER_HELP)
@click.argument("folder")
def report(folder) -> None:
    """Re-render summary.csv, figures and report.md of an experiment FOLDER from its files."""
    from harness.lab.report import write_report

    try:
        click.echo(str(write_report(folder_arg(folder))))
    except UserError as err:
        raise fail(err) from None


@main.command(epilog=FOLDER_HELP)
@click.argument("folder")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(folder, as_json) -> None:
    """One line on where the experiment (or sweep) FOLDER stands: planned, running, finished
    or stopped, with its steps or experiments, read from its files at once (for polling a
    run started with --background)."""
    from harness.lab.status import folder_status, status_line

    path = folder_arg(folder, sweeps=True)
    click.echo(json.dumps(folder_status(path)) if as_json else status_line(path))


@main.command()
@click.argument("requests", nargs=-1)
@click.option("--tracks", type=click.IntRange(min=1), default=None,
              help="Research tracks side by side (one sweep folder each, compared in "
                   "TRACKS.md): K tracks of one REQUEST, or one per REQUEST when several.")
@click.option("--parallel-tracks", type=click.IntRange(min=1), default=None,
              help="Tracks running at once (default: all).")
@click.option("--experiments", type=click.IntRange(min=1), default=None,
              help="Most experiments to run (default 5; on --resume: raise the limit).")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Time budget in hours (default 8; on --resume: raise the limit).")
@click.option("--reviewer", type=click.Choice(["auto", "claude", "offline"]), default="auto",
              show_default=True, help="Who proposes the next experiment (and plans the first).")
@click.option("--budget", type=click.Choice(list(BUDGETS)), default=None, envvar="HARNESS_BUDGET",
              help="Largest budget per experiment (default: small on CPU, medium on GPU).")
@click.option("--model", default=None, envvar="HARNESS_MODEL",
              help="smollm2 (default), tiny, a HF id or a folder [env HARNESS_MODEL].")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the sweep (or the tracks) in this folder (after a crash, kill "
                   "or reboot).")
@click.option("--continue", "extend", type=click.Path(path_type=Path), default=None,
              help="Extend a finished sweep (default one more experiment), picking up "
                   "comments left on its experiments.")
@click.option("--dry-run", is_flag=True,
              help="Plan the first experiment and print what it will cost; start nothing.")
@click.option("--background", is_flag=True,
              help="Start the sweep detached (output in its folder's run.log), print the "
                   "folder and return at once; `harness status FOLDER` says how far it got.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@executor_options
def sweep(requests, tracks, parallel_tracks, experiments, hours, reviewer, budget, model,
          resume, extend, dry_run, background, quiet, **executor) -> None:
    """Run experiments one after another, each proposed by the review of the last; prints
    the sweep folder (SWEEP.md is its digest). Several REQUESTS, or --tracks K, run that
    many sweeps side by side under one folder (TRACKS.md compares them)."""
    from harness.lab.estimate import plan_table
    from harness.lab.folders import experiment_folders
    from harness.lab.status import start_in_background
    from harness.lab.sweep import continue_sweep, run_sweep, start_sweep
    from harness.lab.tracks import is_tracks_root, run_tracks, start_tracks

    folder = resume or extend
    try:
        if [bool(requests), resume is not None, extend is not None].count(True) != 1:
            raise UserError("give a REQUEST for a new sweep or --resume DIR (or --continue "
                             "DIR), not both")
        spec = executor_spec(**executor)
        check_background(background, spec)
        if (dry_run or background) and folder is not None:
            raise UserError("--dry-run and --background start a new sweep; to resume in the "
                            "background use: harness sweep --resume DIR >> DIR/run.log &")
        if extend is not None:
            if is_tracks_root(extend):
                raise UserError("--continue works on one track's folder, not on all tracks")
            continue_sweep(extend, experiments=experiments, hours=hours, progress=not quiet,
                           executor=spec)
            click.echo(str(extend))
            return
        limits = {"experiments": experiments if resume else None,
                  "hours": hours if resume else None}
        if folder is None and (len(requests) > 1 or (tracks or 1) > 1):
            folder = start_tracks(list(requests), root=reports_root(), tracks=tracks or 1,
                                  experiments=experiments or 5, hours=hours or 8.0,
                                  reviewer=reviewer, budget=budget, model=model)
        elif folder is None:
            folder = start_sweep(requests[0], root=reports_root(), experiments=experiments or 5,
                                 hours=hours or 8.0, reviewer=reviewer, budget=budget,
                                 model=model)
        if dry_run or background:
            for first in experiment_folders(folder):  # each track's first experiment
                click.echo(f"{first.relative_to(folder)}:\n{plan_table(first)}\n", err=True)
        if background:
            start_in_background([sys.executable, "-m", "harness", "sweep", "--resume",
                                 str(folder)], folder)
        elif dry_run:  # nothing runs: `harness sweep --resume FOLDER` will
            pass
        elif is_tracks_root(folder):
            run_tracks(folder, max_parallel=parallel_tracks, progress=not quiet,
                       executor=spec, **limits)
        else:
            run_sweep(folder, progress=not quiet, executor=spec, **limits)
    except UserError as err:
        raise fail(err) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted" + (f"; resume with: harness sweep --resume {folder}"
                                     if folder else ""), err=True)
        raise SystemExit(130) from None
    click.echo(str(folder))


@main.command(epilog=FOLDER_HELP)
@click.argument("folder")
@click.argument("text")
def comment(folder, text) -> None:
    """Append a dated comment TEXT to FOLDER/comments.md (shown atop the re-rendered report,
    answered by the next review)."""
    from harness.lab.memory import add_comment

    try:
        click.echo(str(add_comment(folder_arg(folder), text)))
    except UserError as err:
        raise fail(err) from None


@main.command()
@click.option("--env", "env_name", default=None, help="Only the findings on this env.")
def findings(env_name) -> None:
    """Print the findings ledger (derived from the experiment folders)."""
    from harness.lab.findings import collect, render_markdown

    if env_name is not None and env_name not in ENVS:
        raise click.ClickException(f"unknown env {env_name!r}; envs: {', '.join(ENVS)}")
    rows = [f for f in collect(reports_root()) if env_name is None or f.env == env_name]
    click.echo(render_markdown(rows), nl=False)


@main.command()
def reindex() -> None:
    """Rebuild INDEX.md, FINDINGS.md and findings.csv from the experiment folders."""
    from harness.lab.report import reindex as rebuild

    for path in rebuild(reports_root()):
        click.echo(str(path))


@main.command(epilog=FOLDER_HELP + " A sweep's folder or name reviews its latest experiment.")
@click.argument("folder")
@click.option("--reviewer", type=click.Choice(["auto", "claude", "offline"]), default="auto",
              show_default=True, help="Who reviews, when the folder has no review yet.")
@click.option("--again", is_flag=True, help="Review again even if review.json exists.")
def review(folder, reviewer, again) -> None:
    """Print the reviewer's reading and proposal for an experiment FOLDER (or a sweep's latest
    experiment), reviewing it first if it has no review.json."""
    from harness.lab.sweep import review_folder

    try:
        click.echo(review_folder(folder_arg(folder, sweeps=True), reviewer=reviewer,
                                 again=again).read_text())
    except UserError as err:
        raise fail(err) from None


@main.command("install-commands")
@click.argument("dest", type=click.Path(path_type=Path), default=".")
def install_commands(dest) -> None:
    """Install the Claude Code workflows /experiment, /sweep and /review into DEST/.claude, as
    commands (.claude/commands/) and as skills (.claude/skills/<name>/SKILL.md)."""
    from harness.base.resources import install_commands as install

    try:
        written = install(dest)
    except OSError as err:
        raise click.ClickException(f"cannot install into {dest}: {err.strerror or err}") \
            from None
    for path in written:
        click.echo(str(path))

"""The `harness` command line: a thin click shell over library functions.

Bad input (a `UserError`) becomes one line and exit code 1 (`fail`), never a traceback; a
bug keeps its traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from harness.base.config import (
    BUDGETS,
    Config,
    default_budget,
    make_config,
    parse_overrides,
)
from harness.base.errors import UserError, message
from harness.base.scores import better, format_score
from harness.env import ENVS, env_class, make_env


def fail(err: UserError) -> click.ClickException:
    """The one line a user error ends a command with (exit status 1, no traceback). Any other
    exception is a bug: it is not caught, and its traceback shows."""
    return click.ClickException(message(err))


def reports_root() -> Path:
    return Path(os.environ.get("HARNESS_REPORTS_DIR", "research_reports"))


def folder_arg(ref: str, sweeps: bool = False) -> Path:
    """The folder a command names (folders.resolve_folder); a one-line error otherwise."""
    from harness.lab.folders import resolve_folder

    try:
        return resolve_folder(ref, reports_root(), sweeps=sweeps)
    except UserError as err:
        raise fail(err) from None


FOLDER_HELP = ("FOLDER: a path, a folder name under the reports root (as `harness reports` "
               "prints it), a unique prefix of one, or `last` (the newest that ran).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """harness: a language model that learns while it searches (TTT-Discover).

    Experiments go to the reports root: ./research_reports of the current directory, unless
    HARNESS_REPORTS_DIR is set."""


@main.command()
@click.option("--env", "env_name", default="erdos", show_default=True, help="Problem to solve.")
@click.option("--model", default=None, help="smollm2 (default), tiny, a HF id or a folder.")
@click.option("--budget", type=click.Choice(list(BUDGETS)), default=None,
              help="Budget preset (default: small on CPU, medium on GPU).")
@click.option("--seed", type=int, default=None, help="Random seed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any config field (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder.")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue a killed run from its last completed step.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def discover(env_name, model, budget, seed, overrides, out, resume, quiet) -> None:
    """Run one configuration of the TTT-Discover loop into one run folder."""
    from harness.lab.experiment import new_experiment_dir
    from harness.loop.model import check_model_name, default_device
    from harness.loop.ttt import discover as run

    try:
        if resume is not None:
            cfg, run_dir = _resumed_config(resume), resume
        else:
            extra = parse_overrides(overrides)
            extra |= {k: v for k, v in (("env", env_name), ("model", model), ("seed", seed))
                      if v is not None and k not in extra}
            env_class(extra["env"])  # fail fast on an unknown env, before loading a model
            cfg = make_config(budget or default_budget(default_device()), **extra)
            check_model_name(cfg.model)  # before a folder is made
            run_dir = out or new_experiment_dir(reports_root(), f"discover {cfg.env}")
        result = run(cfg, run_dir, resume=resume is not None, progress=not quiet)
    except UserError as err:
        raise fail(err) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; completed steps are saved. Resume with: "
                   f"harness discover --resume {run_dir}", err=True)
        raise SystemExit(130) from None
    best = format_score(result.best_raw_score)
    click.echo(f"best {best} ({result.action} actions) -> {result.run_dir}")


def _resumed_config(run_dir: Path) -> Config:
    path = run_dir / "config.json"
    if not path.exists():
        raise UserError(f"{run_dir} is not a run folder (no config.json)")
    return Config.from_dict(json.loads(path.read_text())["config"])


@main.command()
@click.argument("env_name", metavar="ENV")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--input", "case_file", type=click.Path(path_type=Path), default=None,
              help="Case file (AtCoder envs).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def score(env_name, file, case_file, as_json) -> None:
    """Verify one candidate: a program (.py, .cpp) or a raw construction (.json); for AtCoder
    envs, a program's output file with --input CASE."""

    def read(path: Path) -> str:
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") \
                from None

    try:
        env = make_env(env_name)
        if case_file is not None:
            result = env.score_output(read(file), read(case_file))
        else:
            try:
                solution, action = env.load_file(read(file), file.suffix)
            except ValueError as err:  # load_file's word on the user's file (Env.load_file)
                raise UserError(message(err)) from None
            result = env.score(solution, action)
    except UserError as err:
        raise fail(err) from None
    if as_json:
        click.echo(json.dumps({"valid": result.valid, "raw_score": result.raw_score,
                               "reward": result.reward, "message": result.message}))
    elif result.valid:
        click.echo(f"valid {env.objective} ({better(env.direction)} is better)")
        click.echo(f"{result.raw_score!r}")
    if not result.valid:
        if not as_json:
            click.echo(f"invalid: {result.message}", err=True)
        raise SystemExit(1)


@main.command()
def envs() -> None:
    """List the environments: the built-in ones and those installed packages register."""
    from harness.env.registry import entry_points, source_of

    for name in [*ENVS, *entry_points()]:
        try:
            cls = env_class(name)
        except UserError as err:
            click.echo(f"{name:8s} cannot load: {message(err)}")
            continue
        click.echo(f"{name:8s} {cls.title}; {cls.objective}, {better(cls.direction)} is better; "
                   f"actions: {', '.join(cls.actions)}; {source_of(name)}")


@main.command("new-env")
@click.argument("name")
@click.argument("folder", type=click.Path(path_type=Path), default=Path("."))
def new_env(name, folder) -> None:
    """Write NAME.py, a commented problem that runs as it is, and test_NAME.py into FOLDER."""
    from harness.env.starter import write_starter

    try:
        paths = write_starter(name, folder)
    except UserError as err:
        raise fail(err) from None
    for path in paths:
        click.echo(str(path))
    click.echo(f'next: harness experiment "run {paths[0]}" --budget smoke', err=True)


# --- experiments ---
def executor_options(command):
    """--executor and its settings (harness/lab/executors.py), shared by experiment and sweep."""
    options = [
        click.option("--executor", type=click.Choice(["local", "ray", "slurm"]),
                     default="local", show_default=True,
                     help="Where each arm x seed job runs: here one after another, on Ray, "
                          "or on SLURM (submitit)."),
        click.option("--max-parallel", type=click.IntRange(min=1), default=4, show_default=True,
                     help="Jobs in flight at once (ray, slurm)."),
        click.option("--ray-address", default=None, metavar="auto|HOST:PORT",
                     help="Join this Ray cluster (default: start a local Ray)."),
        click.option("--job-retries", type=click.IntRange(min=0), default=2, show_default=True,
                     help="Extra attempts of a job whose worker died or that failed; each "
                          "continues from the job's last finished step."),
        click.option("--slurm-partition", default=None, help="SLURM partition."),
        click.option("--slurm-gpus", type=click.IntRange(min=0), default=0, show_default=True,
                     help="GPUs per SLURM job (a CUDA plan asks for at least 1)."),
        click.option("--slurm-time", type=click.IntRange(min=1), default=240, show_default=True,
                     help="Time limit of each SLURM job, in minutes."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def executor_spec(executor, max_parallel, ray_address, job_retries, slurm_partition,
                  slurm_gpus, slurm_time):
    """The checked ExecutorSpec of the options above (one-line ExecutorError if unusable)."""
    from harness.lab.executors import ExecutorSpec

    spec = ExecutorSpec(kind=executor, max_parallel=max_parallel, ray_address=ray_address,
                        job_retries=job_retries, slurm_partition=slurm_partition,
                        slurm_gpus=slurm_gpus, slurm_time_min=slurm_time)
    spec.check()
    return spec


@main.command()
@click.argument("request")
@click.option("--budget", type=click.Choice(list(BUDGETS)), default=None,
              help="Budget of the whole experiment (default: small on CPU, medium on GPU).")
@click.option("--model", default=None, help="smollm2 (default), tiny, a HF id or a folder.")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Seeds per arm (default: the budget's).")
@click.option("--dry-run", is_flag=True,
              help="Write the folder, plan and script, and print what they will cost (on "
                   "stderr); run nothing.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@executor_options
def experiment(request, budget, model, seeds, dry_run, quiet, **executor) -> None:
    """Plan REQUEST, write an experiment folder with its script, run it and write the report.

    REQUEST: 'tune <knob> on <env>', 'ablate <component> on <env>',
    'compare <arm> vs <arm> on <env>', 'run <env>', or 'like <experiment | prefix | last>
    but with <change>' (e.g. 'group size 16', '3 seeds', 'lr 1e-4')."""
    from harness.lab.estimate import plan_table
    from harness.lab.experiment import JobsFailed, create_experiment, run_experiment

    folder = None
    try:
        spec = executor_spec(**executor)
        folder = create_experiment(request, root=reports_root(), budget=budget, model=model,
                                   seeds=seeds)
        if dry_run:  # stdout stays the folder alone, for scripts
            click.echo(plan_table(folder), err=True)
        else:
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
    """One line on where the experiment FOLDER stands (planned, running, finished, stopped),
    read from its files at once: for polling a run in the background."""
    from harness.lab.status import status as status_of
    from harness.lab.status import status_line

    path = folder_arg(folder)
    click.echo(json.dumps(status_of(path)) if as_json else status_line(path))


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
@click.option("--budget", type=click.Choice(list(BUDGETS)), default=None,
              help="Largest budget per experiment (default: small on CPU, medium on GPU).")
@click.option("--model", default=None, help="smollm2 (default), tiny, a HF id or a folder.")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the sweep (or the tracks) in this folder (after a crash, kill "
                   "or reboot).")
@click.option("--continue", "extend", type=click.Path(path_type=Path), default=None,
              help="Extend a finished sweep (default one more experiment), picking up "
                   "comments left on its experiments.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@executor_options
def sweep(requests, tracks, parallel_tracks, experiments, hours, reviewer, budget, model,
          resume, extend, quiet, **executor) -> None:
    """Run experiments one after another, each proposed by the review of the last; prints
    the sweep folder (SWEEP.md is its digest). Several REQUESTS, or --tracks K, run that
    many sweeps side by side under one folder (TRACKS.md compares them)."""
    from harness.lab.sweep import continue_sweep, run_sweep, start_sweep
    from harness.lab.tracks import is_tracks_root, run_tracks, start_tracks

    folder = resume or extend
    try:
        if [bool(requests), resume is not None, extend is not None].count(True) != 1:
            raise UserError("give a REQUEST for a new sweep or --resume DIR (or --continue "
                             "DIR), not both")
        spec = executor_spec(**executor)
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
        if is_tracks_root(folder):
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
    """Copy the Claude Code commands (/experiment, /sweep, /review) into DEST/.claude/commands."""
    from harness.base.resources import install_commands as install

    try:
        written = install(dest)
    except OSError as err:
        raise click.ClickException(f"cannot install into {dest}: {err.strerror or err}") \
            from None
    click.echo(str(written[0].parent))


if __name__ == "__main__":
    main()

"""The commands of one run and of the problems: discover, score, envs, new-env."""

from __future__ import annotations

import json
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
from harness.cli.shell import fail, main, reports_root
from harness.env import ENVS, env_class, make_env


@main.command()
@click.option("--env", "env_name", default="erdos", show_default=True, help="Problem to solve.")
@click.option("--model", default=None, envvar="HARNESS_MODEL",
              help="smollm2 (default), tiny, a HF id or a folder [env HARNESS_MODEL].")
@click.option("--budget", type=click.Choice(list(BUDGETS)), default=None, envvar="HARNESS_BUDGET",
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


@main.command()
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="Where to measure (default: cuda when there is one).")
@click.option("--quick", is_flag=True, help="Smaller measurements (within 60 s on 2 cores).")
@click.option("--json", "json_file", type=click.Path(path_type=Path), default=None,
              help="Also write every row and figure to this JSON file.")
def doctor(device, quick, json_file) -> None:
    """Check and measure this machine: versions, CUDA, compilers, the sandbox's isolation,
    the embedded model, sampling and training speed, the sandbox's round trip and every
    env's verifier; on CUDA the fast sampler, training memory and bf16 agreement. Ends with
    one line per problem found and what to do about it."""
    import torch

    from harness.lab.doctor import as_json, run_checks, table

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise fail(UserError("--device cuda: this machine has no CUDA device"))
    rows = run_checks(device, quick, say=lambda line: click.echo(f"... {line}", err=True))
    click.echo(table(rows))
    if json_file is not None:
        json_file.write_text(json.dumps(as_json(rows, device, quick), indent=2) + "\n")

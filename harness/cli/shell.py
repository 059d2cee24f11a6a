"""The `harness` group and what every command shares: one-line errors, the reports root,
folder references and the executor options.

Bad input (a `UserError`) becomes one line and exit code 1 (`fail`), never a traceback; a
bug keeps its traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from harness.base.errors import UserError, message


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


def check_background(background: bool, spec) -> None:
    """--background starts the job with the local executor (its own script or
    `sweep --resume`): refuse another executor before anything is made."""
    if background and spec.kind != "local":
        raise UserError("--background runs with the local executor; drop --executor, or run "
                        "in the foreground")

"""The `harness` command line: a thin click shell over library functions (`harness --help`).

shell.py holds the group and what the commands share; run.py the commands of one run and of
the problems; lab.py those of experiments, sweeps and their folders.
"""

from harness.cli import lab, run  # noqa: F401  (registers their commands on `main`)
from harness.cli.shell import main

__all__ = ["main"]

if __name__ == "__main__":
    main()

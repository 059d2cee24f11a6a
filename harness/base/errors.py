"""Errors a user can fix, and the one way every layer turns an error into one line.

`UserError` is raised for bad input: a config value, a request, a file, a folder name. The
CLI prints its first line and exits with status 1, without a traceback. Every other
exception is a bug and keeps its traceback. The errors of each layer (ConfigError, EnvError,
ModelError, PlanError, ExecutorError, SweepError, ProposalError) derive from it; they are
also ValueErrors, as they were before.
"""

from __future__ import annotations

LIMIT = 300  # characters of one line kept in records, reports and console lines


class UserError(ValueError):
    """Bad input the user can fix; the message is one line meant for them."""


def first_line(text: str, *, last: bool = False, limit: int = LIMIT) -> str:
    """The first (or last) non-empty line of `text`, stripped and cut to `limit`."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if last else lines[0])[:limit] if lines else ""


def message(err: BaseException) -> str:
    """The first line of `err`'s message, or its type's name when it has none."""
    return first_line(str(err)) or type(err).__name__


def one_line(err: BaseException, *, last: bool = False) -> str:
    """'TypeName: first line of the message'. `last`: the message's last line instead, which
    names the job's own error when Ray or submitit wrap it."""
    line = first_line(str(err), last=last)
    return f"{type(err).__name__}: {line}" if line else type(err).__name__

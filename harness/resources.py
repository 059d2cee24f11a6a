"""Files shipped beside the package: experiment script templates (`experiments/`) and Claude
Code command files (`commands/`).

Both folders are top-level data packages (see pyproject.toml), so they sit next to `harness/`
in a checkout, an editable install and a wheel install alike; `importlib.resources` is the
fallback when they were installed somewhere else on `sys.path`.
"""

from __future__ import annotations

import functools
import importlib.resources
import shutil
from pathlib import Path

import jinja2


@functools.cache
def templates() -> jinja2.Environment:
    """The Jinja environment of harness/templates (reports, digests, review prompts): strict
    about undefined names, block tags take their own lines."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
        lstrip_blocks=True)


def resource_dir(name: str) -> Path:
    """The folder of the shipped data package `name` ('experiments' or 'commands')."""
    beside = Path(__file__).resolve().parent.parent / name
    if (beside / "__init__.py").exists():
        return beside
    try:
        return Path(str(importlib.resources.files(name)))
    except ModuleNotFoundError:
        raise FileNotFoundError(f"cannot find the {name}/ folder shipped with harness; "
                                "reinstall the package") from None


def install_commands(dest: Path) -> list[Path]:
    """Copy commands/*.md into `dest`/.claude/commands/; returns the written files."""
    target = Path(dest) / ".claude" / "commands"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sorted(resource_dir("commands").glob("*.md")):
        shutil.copyfile(src, target / src.name)
        written.append(target / src.name)
    if not written:
        raise FileNotFoundError("no command files found in the harness installation")
    return written

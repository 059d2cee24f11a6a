"""Files shipped beside the package: experiment script templates (`experiments/`) and Claude
Code command files (`commands/`).

Both folders are top-level data packages (see pyproject.toml), so they sit next to `harness/`
in a checkout, an editable install and a wheel install alike; `importlib.resources` is the
fallback when they were installed somewhere else on `sys.path`.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import jinja2

from harness.base.errors import UserError

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"  # harness/templates


def jinja_env(*folders: Path, trim: bool = True) -> jinja2.Environment:
    """The one way harness makes a Jinja environment: templates from `folders` (the first
    that has a name wins), strict about undefined names, the final newline kept; `trim`: block
    tags take their own lines (the plan prompt and the experiment script keep theirs)."""
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(f) for f in folders]),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=trim,
        lstrip_blocks=trim)


@functools.cache
def templates(trim: bool = True) -> jinja2.Environment:
    """harness/templates: reports, digests, review and plan prompts, a state's parent."""
    return jinja_env(TEMPLATES, trim=trim)


def resource_dir(name: str) -> Path:
    """The folder of the shipped data package `name` ('experiments' or 'commands')."""
    beside = Path(__file__).resolve().parents[2] / name
    if (beside / "__init__.py").exists():
        return beside
    try:
        return Path(str(importlib.resources.files(name)))
    except ModuleNotFoundError:
        raise UserError(f"cannot find the {name}/ folder shipped with harness; "
                        "reinstall the package") from None


def install_commands(dest: Path) -> list[Path]:
    """Install the Claude Code workflows into `dest`/.claude, both ways current Claude Code
    loads them: commands/<name>.md as a legacy command and skills/<name>/SKILL.md as a skill
    (the same text, with `name:` added to its front matter). Returns the written files."""
    written = []
    for src in sorted(resource_dir("commands").glob("*.md")):
        text = src.read_text()
        command = Path(dest) / ".claude" / "commands" / src.name
        skill = Path(dest) / ".claude" / "skills" / src.stem / "SKILL.md"
        for path, body in ((command, text), (skill, skill_text(src.stem, text))):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
            written.append(path)
    if not written:
        raise UserError("no command files found in the harness installation")
    return written


def skill_text(name: str, command: str) -> str:
    """A command file as a skill: its front matter gains `name: <name>` first."""
    if not command.startswith("---\n"):
        return f"---\nname: {name}\n---\n{command}"
    return f"---\nname: {name}\n{command[4:]}"

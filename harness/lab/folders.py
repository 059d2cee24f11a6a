"""Experiment folders: what one is, where the reports root is, and finding one by name.

An experiment folder holds `plan.json` (and, once it ran, config.json, data/, figures/ and
report.md). Sweeps put theirs one level under the reports root, tracks two (sweep.py,
tracks.py). Every command that takes a folder accepts a path, a name under the reports
root, a unique prefix of one, or `last` (the newest that ran): `resolve_folder`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness.base.config import current_key
from harness.base.errors import UserError
from harness.env.registry import file_sha256, is_file_spec

PLAN_FILE = "plan.json"
PROBLEM_FILE = "problem.py"   # an experiment's own copy of its problem file
PROBLEM_SOURCE = "problem.json"  # where that copy came from: {"source", "sha256"}


class FolderError(UserError):
    """A path or name that is not an experiment folder; one line."""


def is_experiment_folder(folder: Path) -> bool:
    return (Path(folder) / PLAN_FILE).is_file()


def experiment_folder(folder: Path) -> Path:
    """`folder` as a Path; FolderError when it holds no plan.json."""
    folder = Path(folder)
    if not is_experiment_folder(folder):
        raise FolderError(f"{folder} is not an experiment folder (no {PLAN_FILE})")
    return folder


def read_plan(folder: Path) -> dict:
    """An experiment folder's plan.json as the lab reads it: config keys renamed since it was
    written (`config.RENAMED`) carry their current names."""
    plan = localized(json.loads((experiment_folder(folder) / PLAN_FILE).read_text()), folder)
    for arm in plan.get("arms", []):
        arm["overrides"] = {current_key(k): v for k, v in arm.get("overrides", {}).items()}
    if isinstance(plan.get("settings"), dict):
        plan["settings"] = {current_key(k): v for k, v in plan["settings"].items()}
    return plan


def localized(plan: dict, folder: Path) -> dict:
    """`plan` with a file problem pointing at the folder's own copy (problem.py), wherever
    the folder is now: it runs and renders after the original file changed or moved."""
    copy = Path(folder) / PROBLEM_FILE
    if is_file_spec(plan.get("env", "")) and copy.is_file():
        return {**plan, "env": str(copy.resolve())}
    return plan


def adopt_problem(folder: Path, env: str) -> str:
    """Copy a file problem into `folder` (problem.py, its source and sha256 in
    problem.json); returns the env spec of the copy. Other envs are returned as they are."""
    if not is_file_spec(env):
        return env
    source, copy = Path(env).resolve(), (Path(folder) / PROBLEM_FILE).resolve()
    if source != copy:
        shutil.copyfile(source, copy)
        (Path(folder) / PROBLEM_SOURCE).write_text(json.dumps(
            {"source": str(source), "sha256": file_sha256(copy)}, indent=2) + "\n")
    return str(copy)


def problem_provenance(folder: Path) -> dict | None:
    """problem.json of a folder whose problem is a file, else None."""
    path = Path(folder) / PROBLEM_SOURCE
    return {**json.loads(path.read_text()), "copy": PROBLEM_FILE} if path.is_file() else None


def reports_root_of(folder: Path) -> Path:
    """The reports root of an experiment folder (a sweep's experiments sit one level down, a
    track's two: tracks.py)."""
    parent = Path(folder).resolve().parent
    if not (parent / "sweep.json").exists():
        return parent
    return parent.parent.parent if (parent.parent / "tracks.json").exists() else parent.parent


def experiment_folders(root: Path) -> list[Path]:
    """Experiment folders under the reports root (and inside its sweeps and its tracks'
    sweeps), by relative name."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p.parent for p in root.glob(f"*/{PLAN_FILE}")] + \
        [p.parent for p in root.glob(f"*/*/{PLAN_FILE}")] + \
        [p.parent for t in root.glob("*/tracks.json") for p in t.parent.glob(f"*/*/{PLAN_FILE}")]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def ran(folder: Path) -> bool:
    """The experiment started running (config.json is written before any compute, then
    data/): a dry run's folder has only its plan and script."""
    return any((Path(folder) / name).exists() for name in ("config.json", "data/steps.csv"))


def resolve_reference(ref: str, root: Path) -> Path:
    """The experiment folder `ref` names under the reports root: a folder name (a sweep's
    experiments as SWEEP/NAME), a unique prefix of one, or `last` (the newest that ran, inside
    sweeps too). Unknown or ambiguous: one line listing candidates and the root."""
    folders = experiment_folders(root)
    names = {p.relative_to(root).as_posix(): p for p in folders}
    if ref.lower() == "last":
        started = [p for p in folders if ran(p)]
        if not started:
            raise FolderError(f"'last' names no experiment: none under {root} has run "
                              "(set HARNESS_REPORTS_DIR for another reports root)")
        return max(started, key=lambda p: (p.stat().st_mtime, p.name))
    ref = ref.rstrip("/")
    if ref in names:
        return names[ref]
    hits = [n for n in names if n.startswith(ref) or n.split("/")[-1].startswith(ref)]
    if len(hits) == 1:
        return names[hits[0]]
    listed = hits or sorted(names)[-8:]
    what = "is ambiguous" if hits else "names no experiment"
    raise FolderError(f"{ref!r} {what}; candidates: {', '.join(listed) or '(none)'} "
                      f"(in the reports root {root})")


def resolve_folder(ref: str | Path, root: Path, sweeps: bool = False) -> Path:
    """The folder a command was given: a path to an experiment folder (or, with `sweeps`, to
    a sweep's), else a reference under the reports root (`resolve_reference`)."""
    path = Path(ref).expanduser()
    if path.is_dir() and (is_experiment_folder(path) or
                          (sweeps and (path / "sweep.json").is_file())):
        return path
    if path.is_absolute() or str(ref).startswith((".", "~")):  # a path, not a name
        raise FolderError(f"{path} is not an experiment folder (no {PLAN_FILE})")
    if sweeps and (Path(root) / str(ref) / "sweep.json").is_file():
        return Path(root) / str(ref)
    return resolve_reference(str(ref), Path(root))

"""`harness new-env NAME DIR`: a problem file to start from, and its test."""

from __future__ import annotations

from pathlib import Path

from harness.base.resources import TEMPLATES, jinja_env
from harness.env.contract import EnvError
from harness.env.registry import ENVS, NAME


def write_starter(name: str, folder: Path) -> list[Path]:
    """`harness new-env NAME DIR`: NAME.py, a tiny working problem (spread points in [0, 1])
    to edit, and test_NAME.py, its checks; both run as written. Refuses to overwrite."""
    if not NAME.match(name) or name in ENVS:
        raise EnvError(f"the name must be 1-40 letters, digits, _ or - and not a built-in "
                       f"env's, got {name!r}")
    folder = Path(folder)
    paths = [folder / f"{name}.py", folder / f"test_{name}.py"]
    taken = [p for p in paths if p.exists()]
    if taken:
        raise EnvError(f"{taken[0]} exists; choose another name or folder")
    folder.mkdir(parents=True, exist_ok=True)
    words = name.replace("-", "_").split("_")
    context = {"name": name, "file": paths[0].name, "title": "Spread points in [0, 1]",
               "class_name": "".join(w.capitalize() for w in words if w) or "MyProblem"}
    templates = jinja_env(TEMPLATES / "problem", trim=False)
    for path, template in zip(paths, ("starter.py.j2", "starter_test.py.j2"), strict=True):
        path.write_text(templates.get_template(template).render(**context))
    return paths

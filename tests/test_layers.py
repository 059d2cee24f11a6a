"""The package's layers: base -> sandbox -> env -> loop -> lab -> cli, one way, no cycle.

Every `import` statement counts, at module level or inside a function: an import moved into a
function body to dodge a cycle is still a cycle here.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("base", "sandbox", "env", "loop", "lab", "cli")
TOP_LEVEL = {"harness.cli": "cli", "harness.__main__": "cli", "harness": "cli",
             "harness.experiment": "cli"}  # the old scripts' import, kept (harness/experiment.py)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    if module.startswith("envs"):
        return "env"  # the problems implement the env contract
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    parts = module.split(".")
    if parts[0] != "harness" or len(parts) < 2 or parts[1] not in LAYERS:
        raise AssertionError(f"{module} is in no layer: put it under harness/<layer>/")
    return parts[1]


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The harness and envs modules `path` imports, anywhere in the file. `from pkg import
    name` counts as importing pkg.name when that is a module, else pkg."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                     else node.module for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in ("harness", "envs")}
    return found


def import_graph(roots=("harness", "envs")) -> dict[str, set[str]]:
    files = {module_name(p): p for r in roots for p in (ROOT / r).rglob("*.py")}
    return {m: imports_of(p, set(files)) - {m} for m, p in files.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} ({layer_of(m)}) imports {d} ({layer_of(d)})"
                  for m, deps in graph.items() for d in deps
                  if LAYERS.index(layer_of(d)) > LAYERS.index(layer_of(m)))


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path [a, b, ..., a], or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state and (cycle := visit(d)):
                return cycle
        path.pop()
        state[m] = 2
        return []

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return []


def test_no_module_imports_a_higher_layer():
    assert upward_imports(import_graph()) == []


def test_there_is_no_import_cycle():
    assert find_cycle(import_graph()) == []


def test_the_check_sees_an_upward_import_and_a_cycle():
    graph = import_graph()
    graph["harness.base.config"] = graph["harness.base.config"] | {"harness.lab.report"}
    assert upward_imports(graph) == [
        "harness.base.config (base) imports harness.lab.report (lab)"]
    assert find_cycle(graph)[0] == find_cycle(graph)[-1]
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("harness.flat_module")


def test_an_import_inside_a_function_counts(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from harness.lab.report import write_report\n")
    assert imports_of(source, set()) == {"harness.lab.report"}

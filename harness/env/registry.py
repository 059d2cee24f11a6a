"""Where problems come from: an env spec -> its env class.

A spec is one of
- a built-in name (`ENVS`), imported only when asked for so that `harness envs` stays fast;
- a Python file, `./problems/packing.py` (any spec ending in .py): the one `Problem` (or Env)
  subclass it defines;
- `package.module:Class`, a Problem or Env subclass on the path;
- a name an installed package registers in the entry-point group `harness.envs`.
Anything else, or a problem that breaks its contract, is a one-line EnvError.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
import traceback
from pathlib import Path

from harness.base.config import Config
from harness.env.contract import Env, EnvError
from harness.env.problem import BUILT_IN, Problem, env_for

ENVS: dict[str, str] = {
    "toy": "envs.toy.env:Toy",
    "erdos": "envs.erdos.env:Erdos",
    "ac1": "envs.ac1.env:AC1Env",
    "ac2": "envs.ac2.env:AC2Env",
    "cp26": "envs.circle_packing.env:CP26Env",
    "cp32": "envs.circle_packing.env:CP32Env",
    "ahc039": "envs.ahc039.env:AHC039Env",
    "ahc058": "envs.ahc058.env:AHC058Env",
    "trimul": "envs.trimul.env:TriMulEnv",
}
ENTRY_POINTS = "harness.envs"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def is_file_spec(spec: str) -> bool:
    return spec.endswith(".py")


def absolute(spec: str) -> str:
    """`spec` as plans record it: a problem file by its absolute path, anything else as is."""
    return str(Path(spec).resolve()) if is_file_spec(spec) else spec


def env_class(spec: str) -> type[Env]:
    """The env class of `spec` (see the module docstring)."""
    if spec in ENVS:
        return _built_in(spec)
    if is_file_spec(spec):
        return _from_file(absolute(spec))
    if ":" in spec:
        return _from_object(spec, spec)
    registered = entry_points()
    if spec in registered:
        return _from_object(registered[spec], f"{spec} ({registered[spec]}, an installed package)")
    raise EnvError(f"unknown env {spec!r}; available: {', '.join([*ENVS, *registered])}, "
                   "a problem file (./problem.py) or module:Class")


@functools.cache
def _built_in(name: str) -> type[Env]:
    module, _, cls = ENVS[name].partition(":")
    found = getattr(importlib.import_module(module), cls)
    return env_for(found, BUILT_IN) if issubclass(found, Problem) else found


def entry_points() -> dict[str, str]:
    """name -> module:Class of the problems installed packages register."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)}


def source_of(spec: str) -> str:
    """Where `spec` comes from, for `harness envs`."""
    if spec in ENVS:
        return BUILT_IN
    return absolute(spec) if is_file_spec(spec) else entry_points().get(spec, spec)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.cache
def _from_file(path: str) -> type[Env]:
    """The problem a file defines; cached per path (and content, through the module name)."""
    file = Path(path)
    if not file.is_file():
        raise EnvError(f"no problem file at {path}")
    name = f"harness_problem_{file.stem}_{file_sha256(file)[:12]}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        frame = next((f for f in reversed(traceback.extract_tb(err.__traceback__))
                      if f.filename == str(file)), None)
        where = f"{file}, line {frame.lineno}" if frame else str(file)
        if isinstance(err, SyntaxError) and err.lineno:
            where = f"{file}, line {err.lineno}"
        raise EnvError(f"cannot import {where}: {type(err).__name__}: {err}") from None
    found = [v for v in vars(module).values() if inspect.isclass(v) and v.__module__ == name
             and issubclass(v, Problem | Env)]
    if len(found) != 1:
        raise EnvError(f"{file} must define exactly one Problem subclass, found "
                       f"{len(found) or 'none'}")
    return _checked(found[0], str(file))


@functools.cache
def _from_object(target: str, source: str) -> type[Env]:
    module, _, attr = target.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise EnvError(f"cannot load {target}: {type(err).__name__}: {err}") from None
    if not (inspect.isclass(obj) and issubclass(obj, Problem | Env)):
        raise EnvError(f"{target} is not a Problem or Env subclass")
    return _checked(obj, source)


def _checked(cls: type, source: str) -> type[Env]:
    name = getattr(cls, "name", "")
    if name in ENVS:
        raise EnvError(f"{source}: the name {name!r} is a built-in env's; choose another")
    if not isinstance(name, str) or not NAME.match(name):
        raise EnvError(f"{source}: name must be 1-40 letters, digits, _ or -, got {name!r}")
    return env_for(cls, source) if issubclass(cls, Problem) else cls


def env_kwargs(cfg: Config) -> dict:
    """The constructor arguments of `cfg.env` taken from the config: the evaluation settings,
    and `n_cases` (from `atcoder_cases`) only for envs that take it (the AtCoder ones)."""
    kwargs = dict(eval_timeout_s=cfg.eval_timeout_s, seed=cfg.seed,
                  eval_executor=cfg.eval_executor)
    if "n_cases" in inspect.signature(env_class(cfg.env)).parameters:
        kwargs["n_cases"] = cfg.atcoder_cases
    return kwargs


def make_env(name: str, **kwargs) -> Env:
    return env_class(name)(**kwargs)

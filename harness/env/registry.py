"""The registry of built-in problems: name -> env class, imported only when asked for, so
that `harness envs` and the planners stay fast."""

from __future__ import annotations

import importlib
import inspect

from harness.base.config import Config
from harness.env.contract import Env, EnvError

ENVS: dict[str, str] = {
    "toy": "envs.toy.env:ToyEnv",
    "erdos": "envs.erdos.env:ErdosEnv",
    "ac1": "envs.ac1.env:AC1Env",
    "ac2": "envs.ac2.env:AC2Env",
    "cp26": "envs.circle_packing.env:CP26Env",
    "cp32": "envs.circle_packing.env:CP32Env",
    "ahc039": "envs.ahc039.env:AHC039Env",
    "ahc058": "envs.ahc058.env:AHC058Env",
    "trimul": "envs.trimul.env:TriMulEnv",
}


def env_class(name: str) -> type[Env]:
    if name not in ENVS:
        raise EnvError(f"unknown env {name!r}; available: {', '.join(ENVS)}")
    module, _, cls = ENVS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


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

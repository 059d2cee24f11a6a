"""Layer 3, env: the problem contract.

contract (Env: an action -> solution -> raw score -> reward, the prompts, export and load),
answers (parsing numbers; where an answer ends), registry (the built-in problems, by name).
The problems themselves live in the top-level `envs/` package. Imports base and sandbox.

The contract is importable from here: `from harness.env import Env, EvalResult`.
"""

from harness.env.contract import (
    Env,
    EnvError,
    EvalResult,
    downsample,
    empty_start,
    extract_code,
    format_numbers,
    format_score,
    parse_number_list,
    resolve_action,
    shorten_middle,
)
from harness.env.registry import ENVS, env_class, env_kwargs, make_env

__all__ = ["ENVS", "Env", "EnvError", "EvalResult", "downsample", "empty_start", "env_class",
           "env_kwargs", "extract_code", "format_numbers", "format_score", "make_env",
           "parse_number_list", "resolve_action", "shorten_middle"]

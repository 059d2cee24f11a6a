"""ahc039: an axis-parallel polygon net that catches mackerels and avoids sardines.

Reward: the mean per-case score divided by N + 1 = 5001, the most a case can score (all
mackerels, no sardines), so rewards lie in [0, 1]; the initial program (best rectangle on a
100 x 100 grid) gets about 0.36. See `envs.atcoder` for how candidates are run and judged.
"""

from __future__ import annotations

from envs.ahc039.generator import generate_case
from envs.ahc039.verifier import score_case
from envs.atcoder import AtCoderEnv


class AHC039Env(AtCoderEnv):
    name = "ahc039"
    title = "AtCoder AHC039: an axis-parallel net around mackerels, away from sardines"
    objective = "AHC039 total score over the cases"
    time_limit_s = 2.0
    score_scale = 5001.0  # N + 1: every mackerel and no sardine
    generate_case = staticmethod(generate_case)
    score_case = staticmethod(score_case)

"""ahc058 as an env: a contest program that plans T = 500 turns of machine upgrades.

Scoring, limits and verdicts are those of `AtCoderEnv` (see envs/ahc039/env.py): the program
runs on `n_cases` generated cases in parallel, any WA/TLE/RE makes it invalid, the raw score
is the contest's total over the cases. Reward: the mean per-case score divided by 10^7, i.e.
the mean log2 of the final apples over 100 (a round number, well above what we have seen:
the initial one-step-lookahead greedy ends with log2 S between about 40 and 52, a reward of
about 0.48 on the default 8 cases).
"""

from __future__ import annotations

from envs.ahc058.generator import generate_case
from envs.ahc058.verifier import score_case
from envs.atcoder import AtCoderEnv


class AHC058Env(AtCoderEnv):
    name = "ahc058"
    title = "AtCoder AHC058: a production plan over a hierarchy of apple machines"
    objective = "AHC058 total score over the cases"
    time_limit_s = 2.0
    score_scale = 1e7  # 10^5 * log2 S with log2 S = 100
    generate_case = staticmethod(generate_case)
    score_case = staticmethod(score_case)

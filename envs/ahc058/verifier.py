"""Exact scorer for ahc058 (pure: input and output text in, the contest's integer score out).

The output is exactly T actions, one per turn: `i j` strengthens machine j of level i, `-1`
does nothing; lines starting with `#` are comments. Each turn: (1) the action, which costs
C[i][j] * (P[i][j] + 1) apples and must leave a non-negative number; then (2) for levels
0, 1, ..., L-1 in order, level 0 adds A[j] * B[0][j] * P[0][j] apples and level i >= 1 adds
B[i][j] * P[i][j] machines to B[i-1][j]. All counts start at B = 1, P = 0, apples = K.
Score: round(10^5 * log2 S) for the apples S after T turns. Apples are Python integers, so
the arithmetic is exact however large they grow. A broken rule raises ValueError naming it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_INT = re.compile(r"-?[0-9]{1,19}")


@dataclass(frozen=True)
class Case:
    n: int
    levels: int
    turns: int
    apples: int
    a: list[int]             # production per level-0 machine, per id
    costs: list[list[int]]   # costs[i][j]: initial cost of machine j at level i


def parse_input(input_text: str) -> Case:
    values = [int(t) for t in input_text.split()]
    n, levels, turns, apples = values[:4]
    a = values[4:4 + n]
    costs = [values[4 + n + i * n:4 + n + (i + 1) * n] for i in range(levels)]
    return Case(n, levels, turns, apples, a, costs)


def parse_actions(case: Case, output_text: str) -> list[tuple[int, int] | None]:
    """One action per turn: (level, id), or None for doing nothing."""
    lines = [ln for ln in output_text.splitlines() if not ln.lstrip().startswith("#")]
    tokens = " ".join(lines).split()
    for tok in tokens:
        if not _INT.fullmatch(tok):
            raise ValueError(f"output token {tok[:20]!r} is not an integer")
    values = [int(t) for t in tokens]
    actions: list[tuple[int, int] | None] = []
    k = 0
    while k < len(values):
        turn = len(actions)
        if turn == case.turns:
            raise ValueError(f"more than T = {case.turns} actions")
        level = values[k]
        if level == -1:
            actions.append(None)
            k += 1
            continue
        if k + 1 >= len(values):
            raise ValueError(f"turn {turn}: level {level} without a machine id")
        ident = values[k + 1]
        if not 0 <= level < case.levels:
            raise ValueError(f"turn {turn}: level {level} does not exist "
                             f"(0..{case.levels - 1}, or -1 to do nothing)")
        if not 0 <= ident < case.n:
            raise ValueError(f"turn {turn}: machine id {ident} does not exist (0..{case.n - 1})")
        actions.append((level, ident))
        k += 2
    if len(actions) < case.turns:
        raise ValueError(f"only {len(actions)} actions; exactly T = {case.turns} are needed")
    return actions


def final_apples(case: Case, actions: list[tuple[int, int] | None]) -> int:
    """Play the plan turn by turn; the apples at the end (ValueError if one is unaffordable)."""
    count = [[1] * case.n for _ in range(case.levels)]   # B[i][j]
    power = [[0] * case.n for _ in range(case.levels)]   # P[i][j]
    apples = case.apples
    for turn, action in enumerate(actions):
        if action is not None:
            i, j = action
            cost = case.costs[i][j] * (power[i][j] + 1)
            if cost > apples:
                raise ValueError(f"turn {turn}: strengthening machine {j} of level {i} costs "
                                 f"{cost} apples but only {apples} are available")
            apples -= cost
            power[i][j] += 1
        apples += sum(a * b * p for a, b, p in zip(case.a, count[0], power[0], strict=True))
        for i in range(1, case.levels):
            below, here, p_here = count[i - 1], count[i], power[i]
            for j in range(case.n):
                below[j] += here[j] * p_here[j]
    return apples


def score_case(input_text: str, output_text: str) -> int:
    """The contest's score of one output on one case; ValueError when the output is WA."""
    case = parse_input(input_text)
    apples = final_apples(case, parse_actions(case, output_text))
    if apples < 1:  # cannot happen (production never stops once it starts), but log2 needs it
        raise ValueError(f"ended with {apples} apples")
    return math.floor(1e5 * math.log2(apples) + 0.5)

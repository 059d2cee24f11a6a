"""Circle packing: place n disjoint circles in the unit square with the largest sum of radii.

One env class per size (`cp26`, `cp32`) on a shared base. Raw score: the sum of the radii
(higher is better); reward: the raw score. A construction is a list of [x, y, r] triples:
- `construction`: the model writes one circle per line as `x y r`; the parser takes the
  longest run of numbers (prose around it is ignored) and groups it in threes. A count that is
  not a multiple of 3 is refused here; a wrong number of circles by the verifier.
- `program`: `run(seed, budget_s)` returns the triples (a list, an (n, 3) array, or
  {"circles": ...}).
Stored solutions and `harness score` files are JSON: {"circles": [[x, y, r], ...]}.
Initial states: with program actions, the released code's start, an empty program with value
0 (one per group); with construction actions (a project addition for small models, which
cannot write 26 circles from nothing) a k x k grid (k = ceil(sqrt(n))) filled row by row with
circles of radius 1/(2k) (sum 26/12 for 26 circles, 32/12 for 32), also `initial_solutions`.
Best known: sums 2.635 (26 circles) and 2.937 (32), AlphaEvolve (Novikov et al. 2025,
arXiv 2506.13131), matched but not beaten by TTT-Discover (arXiv 2601.16175).
"""

from __future__ import annotations

import json
import math

from envs.circle_packing.verifier import sum_of_radii
from harness.env import Env, parse_number_list
from harness.env.answers import AnswerEnd, numbers_end

SHOWN_DECIMALS = 4


def grid_packing(n_circles: int) -> list[list[float]]:
    """The first n cells of a k x k grid, each holding a circle touching its cell's walls."""
    k = math.ceil(math.sqrt(n_circles))
    return [[(i % k + 0.5) / k, (i // k + 0.5) / k, 0.5 / k] for i in range(n_circles)]


def as_triples(value) -> list[list[float]]:
    """A JSON-like value -> a list of [x, y, r] triples of floats (ValueError otherwise)."""
    if not isinstance(value, list | tuple) or \
            not all(isinstance(c, list | tuple) and len(c) == 3 for c in value):
        raise ValueError("circles must be a list of [x, y, r] triples")
    try:
        return [[float(v) for v in c] for c in value]
    except (TypeError, ValueError):
        raise ValueError("circle coordinates must be numbers") from None


def shown_circles(circles: list[list[float]]) -> str:
    """The circles as `x y r` lines rounded to SHOWN_DECIMALS, each radius shrunk by one unit
    of the last decimal beyond rounding down, so that the rounded circles are still a valid
    packing (rounding moves a centre by at most 0.71 units) and copying them stays valid."""
    unit = 10.0 ** -SHOWN_DECIMALS
    lines = []
    for x, y, r in circles:
        r_shown = max(math.floor(r / unit) * unit - unit, 0.0)
        lines.append(f"{x:.{SHOWN_DECIMALS}f} {y:.{SHOWN_DECIMALS}f} "
                     f"{r_shown:.{SHOWN_DECIMALS}f}")
    return "\n".join(lines)


class CirclePackingEnv(Env):
    n_circles: int = 0
    objective = "sum of radii"
    direction = "max"
    min_len = 1
    max_len = 1000  # the verifier checks the exact count, with a clearer message
    answer_prefixes: dict[str, str] = {}  # the answer is lines of `x y r`, not a bracketed list
    file_keys = ("circles",)  # `harness score` files: {"circles": [[x, y, r], ...]}
    file_example = "[[x, y, r], ...]"
    parent_unit = "circles"
    score_name = "sum of radii"

    def verify(self, values: list[list[float]]) -> float:
        return sum_of_radii(values, self.n_circles)

    def reward(self, raw_score: float) -> float:
        return raw_score

    def answer_end(self, action: str) -> AnswerEnd:
        """A construction is complete once the last circle's radius is written."""
        if action == "program":
            return super().answer_end(action)
        return numbers_end(3 * self.n_circles)

    def parse_construction(self, text: str) -> list[list[float]]:
        numbers = parse_number_list(text)
        if len(numbers) % 3:
            raise ValueError(f"found {len(numbers)} numbers, not a multiple of 3 "
                             "(each circle is x y r)")
        return [numbers[i:i + 3] for i in range(0, len(numbers), 3)]

    def canonical(self, values) -> str:
        return json.dumps(as_triples(values))

    def from_program_value(self, value) -> list[list[float]]:
        if isinstance(value, dict):
            value = value.get("circles")
        return as_triples(value)

    def initial_solutions(self, action: str) -> list[str]:
        if action == "program":
            return [f'''def run(seed: int, budget_s: float) -> list[list[float]]:
    """Circles of radius 1/(2k) in the cells of a k x k grid, row by row."""
    k = {math.ceil(math.sqrt(self.n_circles))}
    return [[(i % k + 0.5) / k, (i // k + 0.5) / k, 0.5 / k] for i in range({self.n_circles})]
''']
        return [self.canonical(grid_packing(self.n_circles))]

    def shown_solution(self, solution: str, action: str) -> str:
        if action == "program":
            return solution
        return shown_circles(self.parse_construction(solution))


class CP26Env(CirclePackingEnv):
    name = "cp26"
    title = "Circle packing: 26 circles in the unit square"
    n_circles = 26
    best_known = 2.635
    best_known_source = "AlphaEvolve, 2025"


class CP32Env(CirclePackingEnv):
    name = "cp32"
    title = "Circle packing: 32 circles in the unit square"
    n_circles = 32
    best_known = 2.937
    best_known_source = "AlphaEvolve, 2025"

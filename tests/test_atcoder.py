"""ahc039 and ahc058: scorers against the contests' testers and hand-built cases, generators
against the shared inputs, the envs end to end (programs in the sandbox), `harness score`."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from envs.ahc039 import generator as gen039
from envs.ahc039 import verifier as v039
from envs.ahc058 import generator as gen058
from envs.ahc058 import verifier as v058
from envs.atcoder import FINAL_CASES, language_of
from harness.cli import main
from harness.env import make_env

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not all((SHARED / p).exists() for p in ("ahc039", "ahc058")),
                                  reason="../shared/data is not present")


def reference_rows(problem: str) -> list[tuple[str, str, str]]:
    path = SHARED / problem / "reference_scores.csv"
    if not path.exists():
        return []
    return [(r["input"], r["output"], r["expected"]) for r in csv.DictReader(path.open())]


def verdict(scorer, input_text: str, output_text: str) -> str:
    try:
        return str(scorer(input_text, output_text))
    except ValueError:
        return "WA"


# --- the contests' own testers ---
@needs_shared
@pytest.mark.parametrize("problem, scorer", [("ahc039", v039.score_case),
                                             ("ahc058", v058.score_case)])
def test_scorers_match_the_official_testers_exactly(problem, scorer):
    rows = reference_rows(problem)
    assert rows
    for input_name, output_name, expected in rows:
        got = verdict(scorer, (SHARED / problem / input_name).read_text(),
                      (SHARED / problem / output_name).read_text())
        assert got == expected, (input_name, output_name)


# --- ahc039: hand-built polygons ---
def case_text(mackerels, sardines) -> str:
    assert len(mackerels) == len(sardines)
    lines = [str(len(mackerels))] + [f"{x} {y}" for x, y in [*mackerels, *sardines]]
    return "\n".join(lines) + "\n"


def polygon_text(*polygons) -> str:
    return "".join(f"{len(p)}\n" + "".join(f"{x} {y}\n" for x, y in p) for p in polygons)


SQUARE = [(0, 0), (10, 0), (10, 10), (0, 10)]
# mackerels: on an edge, on a vertex, inside; sardines: on an edge, outside, outside
SMALL_CASE = case_text([(5, 0), (10, 10), (5, 5)], [(0, 5), (11, 5), (50, 50)])


def score039(*polygons) -> int:
    return v039.score_case(SMALL_CASE, polygon_text(*polygons))


def test_points_on_edges_and_vertices_count_as_inside():
    assert score039(SQUARE) == 3 - 1 + 1


def test_collinear_vertices_are_allowed_and_change_nothing():
    assert score039([(0, 0), (5, 0), (10, 0), (10, 10), (0, 10), (0, 4)]) == 3


def test_the_score_is_never_negative():
    case = case_text([(50, 50)], [(5, 5)])
    assert v039.score_case(case, polygon_text(SQUARE)) == 0


def test_the_last_of_several_polygons_counts():
    small = [(4, 4), (6, 4), (6, 6), (4, 6)]  # only the inside mackerel: 1 - 0 + 1
    assert score039(SQUARE, small) == 2
    assert score039(small, SQUARE) == 3
    assert score039([(0, 0), (10, 10), (10, 0), (0, 10)], small) == 2  # an earlier bad one


# A spiral whose last arm crosses its first inner arm at exactly one point, (1, 4).
SPIRAL_CROSSING = [(0, 0), (10, 0), (10, 10), (1, 10), (1, 2), (8, 2), (8, 8), (3, 8), (3, 4),
                   (0, 4)]


@pytest.mark.parametrize("polygon, why", [
    ([(0, 0), (10, 0), (10, 10)], "vertex count 3"),
    ([(0, 0), (10, 10), (10, 0), (0, 10)], "not axis-parallel"),
    ([(0, 0), (10, 0), (10, 10), (0, 10), (0, 5), (0, 10)], "distinct"),
    ([(-1, 0), (10, 0), (10, 10), (-1, 10)], "coordinates"),
    ([(0, 0), (100_001, 0), (100_001, 10), (0, 10)], "coordinates"),
    ([(0, 0), (10, 0), (10, 10), (10, 5), (0, 5)], "adjacent edges overlap"),  # a reversal
    (SPIRAL_CROSSING, "non-adjacent edges meet"),
    ([(0, 2), (6, 2), (6, 6), (3, 6), (3, 0), (0, 0)], "non-adjacent edges meet"),  # a figure 8
    # a notch from the top whose floor lies on the bottom edge: edges touching along a segment
    ([(0, 0), (10, 0), (10, 10), (6, 10), (6, 0), (4, 0), (4, 10), (0, 10)],
     "non-adjacent edges meet"),
    # two squares touching at one corner: the corner is a repeated vertex
    ([(0, 0), (5, 0), (5, 5), (10, 5), (10, 10), (5, 10), (5, 5), (0, 5)], "distinct"),
])
def test_ahc039_rejects_each_broken_rule_by_name(polygon, why):
    with pytest.raises(ValueError, match=why):
        score039(polygon)


def test_vertex_count_is_checked_on_every_printed_polygon():
    with pytest.raises(ValueError, match="vertex count 1001"):
        v039.parse_polygons(polygon_text([(i, 0) for i in range(1001)], SQUARE))


def staircase(steps: int) -> list[tuple[int, int]]:
    """A staircase from (0, 0): 2 * steps + 2 vertices, perimeter 4 * steps."""
    up = []
    for k in range(steps):
        up += [(k + 1, k), (k + 1, k + 1)]
    return [(0, 0), *up, (0, steps)]


def test_a_polygon_of_exactly_1000_vertices_is_valid_and_1002_is_not():
    v039.check_polygon(np.array(staircase(499)))  # 1000 vertices
    with pytest.raises(ValueError, match="vertex count 1002"):
        v039.check_polygon(np.array(staircase(500)))


def test_perimeter_of_exactly_4e5_is_valid_and_4e5_plus_2_is_not():
    full = [(0, 0), (100_000, 0), (100_000, 100_000), (0, 100_000)]
    v039.check_polygon(np.array(full))
    notch = [*full[:3], (2, 100_000), (2, 99_999), (1, 99_999), (1, 100_000), full[3]]
    with pytest.raises(ValueError, match="perimeter 400002 exceeds 400000"):
        v039.check_polygon(np.array(notch))


@pytest.mark.parametrize("output, why", [
    ("", "no polygon"), ("4\n0 0\n10 0\n10 10\n", "ends early"), ("4\n0 0\n10 0\n10 x\n0 10\n",
                                                                  "not an integer"),
    ("4\n0 0\n10 0\n10 10.5\n0 10\n", "not an integer"),
])
def test_ahc039_rejects_malformed_output(output, why):
    with pytest.raises(ValueError, match=why):
        v039.score_case(SMALL_CASE, output)


def naive_inside(polygon, x, y) -> bool:
    """On an edge, or an odd number of vertical edges to the right (half-open in y)."""
    crossings = 0
    for k, (x1, y1) in enumerate(polygon):
        x2, y2 = polygon[(k + 1) % len(polygon)]
        if min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2):
            return True
        crossings += x1 == x2 and x1 > x and min(y1, y2) <= y < max(y1, y2)
    return crossings % 2 == 1


def column_polygon(rng, columns: int, size: int) -> list[tuple[int, int]]:
    """A random simple orthogonal polygon: adjacent vertical bars [lo, hi] that overlap,
    traced along the tops left to right and the bottoms right to left."""
    lo, hi = [], []
    for _ in range(columns):
        while True:
            a, b = sorted(rng.choice(size + 1, 2, replace=False).tolist())
            if not lo or (max(a, lo[-1]) < min(b, hi[-1])):
                break
        lo.append(a)
        hi.append(b)
    xs = np.cumsum(rng.integers(1, 4, columns + 1)).tolist()
    top = [p for k in range(columns) for p in ((xs[k], hi[k]), (xs[k + 1], hi[k]))]
    bottom = [p for k in reversed(range(columns)) for p in ((xs[k + 1], lo[k]), (xs[k], lo[k]))]
    ring = top + bottom
    return [p for k, p in enumerate(ring) if p != ring[k - 1]]  # equal heights: one vertex


@pytest.mark.parametrize("seed", range(12))
def test_inside_test_matches_a_naive_one_on_every_lattice_point(seed):
    rng = np.random.default_rng(seed)
    polygon = column_polygon(rng, columns=int(rng.integers(1, 7)), size=12)
    if seed % 2:
        polygon = [(y, x) for x, y in polygon]  # rows instead of columns
    poly = np.array(polygon)
    v039.check_polygon(poly)
    grid = np.array([(x, y) for x in range(-1, 24) for y in range(-1, 24)])
    fast = v039.inside_mask(poly, grid)
    slow = [naive_inside(polygon, x, y) for x, y in grid.tolist()]
    assert fast.tolist() == slow


def test_inside_test_handles_a_valid_spiral():
    spiral = [(0, 0), (10, 0), (10, 10), (2, 10), (2, 4), (6, 4), (6, 6), (4, 6), (4, 8),
              (8, 8), (8, 2), (0, 2)]
    v039.check_polygon(np.array(spiral))
    grid = np.array([(x, y) for x in range(-1, 12) for y in range(-1, 12)])
    slow = [naive_inside(spiral, x, y) for x, y in grid.tolist()]
    assert v039.inside_mask(np.array(spiral), grid).tolist() == slow


# --- ahc039: generator ---
def test_ahc039_generator_is_deterministic_and_follows_the_format():
    text = gen039.generate_case(5)
    assert text == gen039.generate_case(5) and text != gen039.generate_case(6)
    mackerels, sardines = v039.parse_input(text)
    points = np.concatenate([mackerels, sardines])
    assert len(mackerels) == len(sardines) == 5000
    assert points.min() >= 0 and points.max() <= 100_000
    assert len(np.unique(points, axis=0)) == 10_000


def spread_stats(text: str) -> list[list[float]]:
    """Per kind: count, coordinate standard deviation, occupied 2000 x 2000 cells."""
    return [[len(p), float(p.std(axis=0).mean()), len(np.unique(p // 2000, axis=0))]
            for p in v039.parse_input(text)]


@needs_shared
def test_ahc039_generated_cases_look_like_the_shared_ones():
    shared = np.array([spread_stats(p.read_text())
                       for p in sorted((SHARED / "ahc039").glob("in_*.txt"))]).reshape(-1, 3)
    ours = np.array([spread_stats(gen039.generate_case(s)) for s in range(20)]).reshape(-1, 3)
    assert len(shared) >= 6 and np.all(shared[:, 0] == 5000) and np.all(ours[:, 0] == 5000)
    for col, name in [(1, "coordinate spread"), (2, "occupied cells")]:
        sd = ours[:, col].std(ddof=1)
        z = (shared[:, col].mean() - ours[:, col].mean()) / (
            sd * math.sqrt(1 / len(shared) + 1 / len(ours)))
        assert abs(z) < 3, f"{name}: shared mean {shared[:, col].mean():.0f}, ours " \
                           f"{ours[:, col].mean():.0f}"


# --- ahc058 ---
TINY = "1 2 3 1\n2\n1\n3\n"  # one id, two levels, three turns, A = [2], C = [[1], [3]]


def test_ahc058_plays_a_tiny_plan_as_worked_out_by_hand():
    # turn 0: pay 1, P0 = 1, +2 -> 2; turn 1: pay 2, P0 = 2, +4 -> 4;
    # turn 2: pay 3, P1 = 1, +4 -> 5 (production before B0 grows), then B0 = 2.
    case = v058.parse_input(TINY)
    assert v058.final_apples(case, [(0, 0), (0, 0), (1, 0)]) == 5
    assert v058.score_case(TINY, "0 0\n0 0\n1 0\n") == round(1e5 * math.log2(5))


def test_ahc058_ignores_comment_lines_and_allows_spending_every_apple():
    # pay the only apple on turn 0, then +2 on each of the three turns
    assert v058.score_case(TINY, "# plan\n0 0\n# more\n-1\n-1\n") == round(1e5 * math.log2(6))


@pytest.mark.parametrize("output, why", [
    ("0 0\n-1\n", "only 2 actions"),
    ("0 0\n-1\n-1\n-1\n", "more than T = 3"),
    ("1 0\n-1\n-1\n", "turn 0: strengthening machine 0 of level 1 costs 3 apples but only 1"),
    ("0 0\n1 0\n-1\n", "turn 1: .* costs 3 apples but only 2"),
    ("2 0\n-1\n-1\n", "level 2 does not exist"),
    ("-2 0\n-1\n-1\n", "level -2 does not exist"),
    ("0 1\n-1\n-1\n", "machine id 1 does not exist"),
    ("0 -1\n-1\n-1\n", "machine id -1 does not exist"),
    ("-1\n-1\n0\n", "level 0 without a machine id"),
    ("0 0\nskip\n-1\n", "not an integer"),
])
def test_ahc058_rejects_each_wrong_answer_by_name(output, why):
    with pytest.raises(ValueError, match=why):
        v058.score_case(TINY, output)


def test_ahc058_apples_stay_exact_beyond_floating_point():
    case = v058.parse_input(gen058.generate_case(0))
    plan = [(0, 0)] + [None] * 499
    assert v058.final_apples(case, plan) == 500  # 0 left after paying 1, then +1 per turn
    assert isinstance(v058.final_apples(case, [None] * 500), int)


def test_ahc058_generator_follows_the_rules():
    for seed in range(10):
        case = v058.parse_input(gen058.generate_case(seed))
        assert (case.n, case.levels, case.turns, case.apples) == (10, 4, 500, 1)
        assert case.a[0] == 1 and case.a == sorted(case.a) and max(case.a) <= 100
        assert case.costs[0][0] == 1
        ratios = [case.costs[i][j] / (case.a[j] * 500**i)
                  for i in range(4) for j in range(10) if (i, j) != (0, 0)]
        assert 0.99 <= min(ratios) and max(ratios) <= 100.01


@needs_shared
def test_ahc058_shared_inputs_fit_the_generator_rules():
    for path in sorted((SHARED / "ahc058").glob("in_*.txt")):
        case = v058.parse_input(path.read_text())
        assert case.a[0] == 1 and case.a == sorted(case.a) and case.costs[0][0] == 1


# --- the envs ---
def test_languages_are_told_apart():
    assert language_of("#include <cstdio>\nint main(){}") == "cpp"
    assert language_of("import sys\n# include this\nprint(4)") == "python"


@pytest.mark.parametrize("name", ["ahc039", "ahc058"])
def test_initial_programs_compile_and_score_validly(name):
    env = make_env(name, eval_timeout_s=10.0, seed=0, n_cases=3)
    [program] = env.initial_solutions("program")
    result = env.score(program, "program")
    assert result.valid, result.message
    scores = result.artifacts["case_scores"]
    assert len(scores) == 3 and result.raw_score == sum(scores)
    assert result.reward == pytest.approx(sum(scores) / 3 / env.score_scale)
    assert 0.2 < result.reward < 0.8
    assert env.export(program, "program") == (".cpp", program)


PRINT_SQUARE = "print('4\\n0 0\\n100000 0\\n100000 100000\\n0 100000')"


@pytest.mark.parametrize("program, verdict_start", [
    ("#include <cstdio>\nint main() { return undefined_name; }", "CE: "),
    ("print('4\\n0 0\\n9 9\\n9 0\\n0 9')", "WA on case 0 (seed 0): edge 0"),
    ("import sys\nsys.exit(3)", "RE on case 0 (seed 0)"),
    ("while True:\n    pass", "TLE on case 0 (seed 0)"),
])
def test_any_failing_case_makes_a_program_invalid_with_its_verdict(program, verdict_start):
    env = make_env("ahc039", n_cases=2, time_factor=0.25)
    result = env.score(program, "program")
    assert not result.valid and result.reward == 0.0
    assert result.message.startswith(verdict_start), result.message


def test_a_python_program_is_run_on_every_case():
    env = make_env("ahc039", n_cases=3, seed=7)
    result = env.score(PRINT_SQUARE, "program")
    assert result.valid and result.artifacts["case_seeds"] == [7000, 7001, 7002]
    assert result.artifacts["case_scores"] == [1, 1, 1]


def test_final_cases_are_150_and_disjoint_from_search_cases():
    env = make_env("ahc039", seed=3, n_cases=16)
    final = env.case_seeds(FINAL_CASES, final=True)
    assert len(final) == 150 and not set(final) & set(env.case_seeds(16))


@pytest.mark.parametrize("name", ["ahc039", "ahc058"])
def test_the_prompt_shows_the_task_limits_program_and_score(name):
    env = make_env(name, n_cases=4)
    [program] = env.initial_solutions("program")
    text = env.prompt(program, 1234.0, "program")
    assert "2 s of CPU time" in text and "```cpp\n" + program in text
    assert "1234 in total over 4 cases" in text
    empty = env.prompt("", None, "program")
    assert "There is no program yet" in empty and "```cpp\n" not in empty


# --- harness score ---
def run(*args):
    return CliRunner().invoke(main, list(args))


def test_harness_score_scores_an_output_file_against_a_case(tmp_path):
    case, output = tmp_path / "case.txt", tmp_path / "out.txt"
    case.write_text(SMALL_CASE)
    output.write_text(polygon_text(SQUARE))
    result = run("score", "ahc039", str(output), "--input", str(case))
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "3.0"
    verdict_json = json.loads(run("score", "ahc039", str(output), "--input", str(case),
                                  "--json").output)
    assert verdict_json["reward"] == pytest.approx(3 / 5001)


def test_harness_score_says_why_an_output_is_wrong(tmp_path):
    case, output = tmp_path / "case.txt", tmp_path / "out.txt"
    case.write_text(TINY)
    output.write_text("-1\n")
    result = run("score", "ahc058", str(output), "--input", str(case))
    assert result.exit_code == 1 and "only 1 actions" in result.output


def test_harness_score_runs_a_program_on_the_configured_cases(tmp_path):
    program = tmp_path / "square.py"
    program.write_text(PRINT_SQUARE)
    result = run("score", "ahc039", str(program))
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "8.0"  # 8 cases, 1 point each


@pytest.mark.parametrize("args, message", [
    (["score", "ahc039", "out.txt"], "give its case with --input"),
    (["score", "erdos", "x.json", "--input", "case.txt"], "takes no --input"),
])
def test_harness_score_refuses_what_it_cannot_score(tmp_path, args, message):
    for name in ("out.txt", "x.json", "case.txt"):
        (tmp_path / name).write_text("{}")
    args = [str(tmp_path / a) if a.endswith((".txt", ".json")) else a for a in args]
    result = run(*args)
    assert result.exit_code == 1 and message in result.output


# --- the judge: ALE-bench's limits (issue 18) ---
def judged(env, wall_s: float, cpu_s: float):
    from harness.sandbox.runner import SandboxResult

    result = SandboxResult("ok", 0, wall_s, cpu_s, 10.0, PRINT_SQUARE_OUTPUT, "", False, "ok")
    return env._judge(0, 0, result, env.case(0))


PRINT_SQUARE_OUTPUT = "4\n0 0\n100000 0\n100000 100000\n0 100000\n"


def test_the_limits_are_ale_benchs_for_a_2_s_task():
    limits = make_env("ahc039").limits
    assert limits.cpu_s == pytest.approx(3.1) and limits.wall_s == pytest.approx(4.5)


def test_a_program_that_uses_its_full_time_limit_is_valid():
    env = make_env("ahc039")
    assert judged(env, wall_s=2.3, cpu_s=2.2) == 1  # past 2 s of CPU: TLE before


@pytest.mark.parametrize("wall_s, cpu_s", [(2.6, 2.0), (2.2, 3.2)])
def test_tle_is_past_tl_plus_half_a_second_of_wall_or_the_cpu_limit(wall_s, cpu_s):
    from envs.atcoder import CaseFailure

    with pytest.raises(CaseFailure, match="^TLE on case 0"):
        judged(make_env("ahc039"), wall_s, cpu_s)

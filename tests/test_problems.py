"""Your own problem in one file (issue 21): a Problem subclass anywhere, run end to end.

The problem files are written here, in temporary folders: `harness new-env`'s starter, small
variants of it, bad ones, and a throw-away installed package that registers a problem through
the `harness.envs` entry-point group.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.env import make_env
from harness.env.registry import env_class, file_sha256
from harness.lab.folders import read_plan

TINY = ["--budget", "smoke", "--model", "tiny"]


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


@pytest.fixture
def starter(tmp_path):
    """`harness new-env min_gap DIR`: the problem file and its test."""
    result = run("new-env", "min_gap", str(tmp_path / "problems"))
    assert result.exit_code == 0, result.output
    return tmp_path / "problems" / "min_gap.py"


def problem_file(folder, body: str, name="mine.py"):
    path = folder / name
    path.write_text("from harness.env.problem import Problem\n\n" + textwrap.dedent(body))
    return path


GOOD = """
    class Spread(Problem):
        name = "spread"
        title = "Spread 4 points"
        direction = "max"
        objective = "smallest gap"
        statement = "Place 4 numbers in [0, 1], as far apart as possible."
        initial_solution = [0.1, 0.2, 0.3, 0.4]

        def score(self, solution):
            if len(solution) != 4 or not all(0 <= x <= 1 for x in solution):
                raise ValueError("4 numbers in [0, 1]")
            xs = sorted(solution)
            return min(b - a for a, b in zip(xs, xs[1:]))
"""


# --- the README's example and the starter ---
def test_the_readme_s_own_problem_example_runs(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Your own problem", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 30
    (tmp_path / "min_gap.py").write_text(code)
    env = make_env(str(tmp_path / "min_gap.py"))
    result = env.score(env.initial_solutions("construction")[0], "construction")
    assert result.valid and result.raw_score == pytest.approx(0.1)



def test_new_env_writes_a_problem_that_passes_its_own_test(starter):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(starter.with_name("test_min_gap.py"))],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    assert run("new-env", "min_gap", str(starter.parent)).exit_code == 1  # never overwrites


def test_score_reads_a_solution_file_of_the_problem(starter, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"solution": [i / 7 for i in range(8)]}))
    result = run("score", str(starter), str(good))
    assert result.exit_code == 0, result.output
    assert float(result.output.splitlines()[-1]) == pytest.approx(1 / 7)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"solution": [0.5, 2.0]}))
    result = run("score", str(starter), str(bad))
    assert result.exit_code == 1 and "expected 8 numbers" in result.output


@pytest.mark.slow
def test_a_problem_file_runs_as_an_experiment_and_its_folder_keeps_a_copy(
        starter, reports_in_tmp, tmp_path):
    result = run("experiment", f"run {starter}", *TINY, "--quiet")
    assert result.exit_code == 0, result.output
    [folder] = [p for p in reports_in_tmp.iterdir() if p.is_dir()]
    config = json.loads((folder / "config.json").read_text())
    assert config["problem"] == {"source": str(starter), "sha256": file_sha256(starter),
                                 "copy": "problem.py"}
    assert config["env"]["name"] == "min_gap"
    assert (folder / "problem.py").read_text() == starter.read_text()
    assert "**Status: complete.**" in (folder / "report.md").read_text()
    assert run("report", str(folder)).exit_code == 0

    # the original changes and the folder moves: the folder still re-runs from its copy
    starter.write_text("raise ImportError('gone')\n")
    moved = tmp_path / "moved"
    shutil.move(folder, moved)
    assert read_plan(moved)["env"] == str(moved / "problem.py")
    shutil.rmtree(moved / "data" / "shards" / "full-s0")
    for f in (moved / "best").glob("full-s0*"):
        f.unlink()
    done = subprocess.run([sys.executable, "experiment.py"], cwd=moved, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (moved / "best" / "full-s0.score.json").exists()


LETTERS = """
    class Letters(Problem):
        name = "letters"
        title = "A line with many different letters"
        direction = "max"
        objective = "distinct letters"
        statement = "Write one line that uses as many different letters as you can."
        construction = "text"
        initial_solution = "abc"

        def score(self, solution):
            return float(len({c for c in solution.lower() if c.isalpha()}))
"""


@pytest.mark.slow
def test_a_sweep_of_two_experiments_runs_on_a_problem_file(tmp_path, reports_in_tmp):
    """A text problem: even the tiny random model's lines are valid, so the offline
    reviewer goes on to a second experiment."""
    path = problem_file(tmp_path, LETTERS)
    result = run("sweep", f"run {path}", "--experiments", "2", "--hours", "1",
                 "--reviewer", "offline", *TINY, "--quiet")
    assert result.exit_code == 0, result.output
    [root] = [p for p in reports_in_tmp.iterdir() if p.is_dir()]
    experiments = sorted(p for p in root.iterdir() if (p / "plan.json").exists())
    assert len(experiments) == 2
    for folder in experiments:
        assert (folder / "problem.py").exists() and (folder / "report.md").exists()
        assert read_plan(folder)["env"] == str(folder / "problem.py")


# --- an installed package ---
@pytest.fixture
def installed_package(tmp_path, monkeypatch):
    """A throw-away distribution on sys.path whose entry point registers `pkg_spread`."""
    site = tmp_path / "site"
    (site / "spreadpkg").mkdir(parents=True)
    (site / "spreadpkg" / "__init__.py").write_text(
        "from harness.env.problem import Problem\n\n" + textwrap.dedent(GOOD).replace(
            'name = "spread"', 'name = "pkg_spread"'))
    info = site / "spreadpkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spreadpkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness.envs]\npkg_spread = spreadpkg:Spread\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get(
        "PYTHONPATH", "")]))
    return "pkg_spread"


def test_an_installed_package_s_problem_is_listed_and_loads(installed_package):
    result = run("envs")
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.output.splitlines() if x.startswith("pkg_spread")]
    assert "spreadpkg:Spread" in line and "Spread 4 points" in line
    env = make_env(installed_package)
    assert env.score(env.initial_solutions("construction")[0], "construction").valid
    assert env_class("spreadpkg:Spread") is env_class("spreadpkg:Spread")  # module:Class
    assert make_env("spreadpkg:Spread").name == "pkg_spread"


@pytest.mark.slow
def test_an_installed_package_s_problem_runs_as_an_experiment(installed_package,
                                                               reports_in_tmp):
    result = run("experiment", f"run {installed_package}", *TINY, "--quiet")
    assert result.exit_code == 0, result.output
    [folder] = [p for p in reports_in_tmp.iterdir() if p.is_dir()]
    assert "**Status: complete.**" in (folder / "report.md").read_text()


# --- bad problem files: one line, exit code 1 ---
@pytest.mark.parametrize("body, says", [
    (GOOD.replace('        statement = "Place 4 numbers in [0, 1], as far apart as possible."\n',
                  ""), "lacks statement"),
    (GOOD.replace("def score(self, solution):", "def score(self, solution):\n"
                  "            import numpyy"), None),  # an import error inside score: fine
    ("    import not_a_module_anywhere\n" + GOOD, "line 3: ModuleNotFoundError"),
    (GOOD.replace("[0.1, 0.2, 0.3, 0.4]", "[0.1, 0.2]"), "initial solution fails score()"),
    (GOOD.replace('direction = "max"', 'direction = "up"'), "direction must be 'min' or 'max'"),
    (GOOD.replace('direction = "max"', 'direction = "max"\n        prompt_digits = 0'),
     "prompt_digits must be a whole number"),
    (GOOD.replace('name = "spread"', 'name = "erdos"'), "is a built-in env's"),
    (GOOD.replace("class Spread(Problem):", "class Spread:"), "exactly one Problem subclass"),
])
def test_a_bad_problem_file_gives_one_line_and_exit_code_1(tmp_path, body, says):
    path = problem_file(tmp_path, body)
    result = run("experiment", f"run {path}", *TINY, "--dry-run")
    if says is None:  # the file loads; its scorer fails only when called (see below)
        assert result.exit_code == 1 and "initial solution fails score()" in result.output
        return
    assert result.exit_code == 1, result.output
    [line] = result.output.strip().splitlines()
    assert says in line and str(path) in line and "Traceback" not in result.output
    score = run("score", str(path), str(path))
    assert score.exit_code == 1 and says in score.output


# --- the user's scorer is trusted, but guarded ---
@pytest.mark.parametrize("returns, says", [
    ("raise TypeError('oops')", "scorer failed: TypeError: oops"),
    ("return float('nan')", "scorer failed: score() returned nan, not a number"),
    ("return 'high'", "scorer failed: score() returned 'high', not a number"),
    ("import time; time.sleep(5)", "scorer failed: no answer within 0.3 s"),
])
def test_a_scorer_that_misbehaves_makes_the_candidate_invalid_and_says_so_once(
        tmp_path, capfd, returns, says):
    body = GOOD.replace("            xs = sorted(solution)\n",
                        "            if solution[0] > 0.5:\n"
                        f"                {returns}\n            xs = sorted(solution)\n")
    body = body.replace("        initial_solution = [0.1, 0.2, 0.3, 0.4]\n",
                        "        initial_solution = [0.1, 0.2, 0.3, 0.4]\n"
                        "        score_timeout_s = 0.3\n")
    env = make_env(str(problem_file(tmp_path, body)))
    results = [env.evaluate("[0.9, 0.1, 0.2, 0.3]", "construction") for _ in range(3)]
    assert all(not r.valid and r.message == says for r in results)
    assert env.evaluate("[0.1, 0.3, 0.6, 0.9]", "construction").valid  # the run goes on
    assert capfd.readouterr().err.count(says) == 1


def test_a_json_problem_takes_any_json_value(tmp_path):
    body = """
        class Pairs(Problem):
            name = "pairs"
            title = "Two named numbers"
            direction = "min"
            objective = "distance of a and b"
            statement = 'Give {"a": x, "b": y} with x and y as close as possible, x != y.'
            construction = "json"
            initial_solution = {"a": 0.0, "b": 1.0}

            def score(self, solution):
                if not isinstance(solution, dict) or solution["a"] == solution["b"]:
                    raise ValueError("two different numbers a and b")
                return abs(solution["a"] - solution["b"])
    """
    env = make_env(str(problem_file(tmp_path, body)))
    result = env.evaluate('Here: ```json\n{"a": 0.5, "b": 0.75}\n``` done', "construction")
    assert result.valid and result.raw_score == 0.25 and result.reward == 4.0
    assert not env.evaluate('{"a": 1, "b": 1}', "construction").valid
    prompt = env.prompt(env.initial_solutions("construction")[0], 1.0, "construction")
    assert "as close as possible" in prompt and '{"a": 0.0, "b": 1.0}' in prompt


def test_a_problem_loads_once_per_file_and_its_starts_are_diverse(tmp_path):
    path = str(problem_file(tmp_path, GOOD))
    assert env_class(path) is env_class(path)
    import random

    starts = make_env(path).initial_states("construction", random.Random(0), 4)
    assert starts[0].construction == json.dumps([0.1, 0.2, 0.3, 0.4])
    assert len({s.construction for s in starts}) == 4 and all(s.valid for s in starts)
    assert all(math.isclose(s.raw_score, 0.1, rel_tol=0.2) for s in starts)


def test_the_claude_planner_is_offered_the_problem_file_the_request_names(claude, tmp_path):
    from harness.lab.planner import make_plan

    path = problem_file(tmp_path, GOOD)
    claude.reply_tool_use("submit_plan", {
        "goal": "How far does it get?", "hypothesis": "Up.", "env": str(path),
        "baseline": "full", "arms": [{"name": "full", "overrides": {}, "why": "defaults"}]})
    plan = make_plan(f"run {path}", "smoke", "tiny", None, "cpu", max_retries=0)
    assert plan.env == str(path) and plan.planner.startswith("claude")
    [sent] = claude.requests
    assert str(path) in sent["tools"][0]["input_schema"]["properties"]["env"]["enum"]
    assert f"`{path}`: Spread 4 points" in sent["messages"][0]["content"]


@pytest.mark.slow
def test_scorer_failures_are_counted_in_the_report_and_the_run_goes_on(tmp_path,
                                                                      reports_in_tmp):
    body = LETTERS.replace("            return float(", "            if solution != 'abc':\n"
                           "                raise TypeError('my bug')\n"
                           "            return float(")
    path = problem_file(tmp_path, body)
    result = run("experiment", f"run {path}", *TINY, "--quiet")
    assert result.exit_code == 0, result.output
    [folder] = [p for p in reports_in_tmp.iterdir() if p.is_dir()]
    report = (folder / "report.md").read_text()
    assert "The problem's score() failed on" in report
    assert "scorer failed: TypeError: my bug" in report


def test_a_built_in_problem_s_own_bug_raises_instead_of_counting_as_invalid(monkeypatch):
    env = make_env("toy")
    monkeypatch.setattr(env.problem, "score", lambda solution: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        env.evaluate("abc", "construction")

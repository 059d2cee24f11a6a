"""Issue 23: requests in a researcher's words, folders by name, dry runs that say what will
happen, progress that reads in a log, and the /experiment command's shell steps."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.base import records
from harness.cli import main

COMMANDS = Path(__file__).resolve().parents[1] / "commands"


def run(*args, **env):
    return CliRunner().invoke(main, list(args), env=env or None)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


def dry(request: str, *flags: str):
    return run("experiment", request, "--model", "tiny", "--dry-run", *flags)


# --- requests ---
@pytest.mark.parametrize("request_, env, arms", [
    ("ablate reuse on circle packing 26", "cp26", ["full", "eps_greedy", "no_reuse"]),
    ("does test-time training help on ac1?", "ac1", ["full", "no_training", "best_of_n"]),
    ("does the entropic objective help for erdos", "erdos",
     ["full", "constant_beta", "no_entropic"]),
    ("tune the learning rate on erdos with 3 seeds", "erdos", None),
])
def test_requests_in_a_researchers_words_are_understood(request_, env, arms):
    result = dry(request_)
    assert result.exit_code == 0, result.output
    plan = json.loads((Path(result.stdout.strip()) / "plan.json").read_text())
    assert plan["env"] == env
    if arms:
        assert [a["name"] for a in plan["arms"]] == arms
    else:
        assert {k for a in plan["arms"] for k in a["overrides"]} == {"learning_rate"}
        assert plan["seeds"] == [0, 1, 2]


def test_steps_and_device_inside_the_request():
    result = dry("run erdos for 3 steps on CPU")
    assert result.exit_code == 0, result.output
    plan = json.loads((Path(result.stdout.strip()) / "plan.json").read_text())
    assert plan["settings"]["steps"] == 3 and plan["device"] == "cpu"


@pytest.mark.parametrize("request_, says", [
    ("ablate reuse on circle packing", "'circle packing' is cp26 or cp32: which one?"),
    ("tune temprature on erdos", "did you mean 'temperature'?"),
    ("run erdoss", "did you mean 'erdos'?"),
    ("tnue lr on erdos", "did you mean 'tune'?"),
])
def test_near_misses_are_refused_with_a_suggestion_and_no_folder(request_, says,
                                                                 reports_in_tmp):
    result = dry(request_)
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert says in line and "Traceback" not in result.output
    assert not reports_in_tmp.exists() or not any(reports_in_tmp.glob("*/plan.json"))


def test_an_env_that_cannot_run_here_is_refused_before_any_folder(reports_in_tmp):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: trimul can run")
    for request_ in ("run trimul", "run erdos on GPU"):
        result = dry(request_)
        assert result.exit_code == 1, result.output
        [line] = result.output.strip().splitlines()
        assert "CUDA" in line, line
    assert not reports_in_tmp.exists() or not list(reports_in_tmp.iterdir())


def test_like_x_but_with_program_actions(reports_in_tmp):
    first = dry("run toy", "--budget", "smoke")
    assert first.exit_code == 0, first.output
    records.write_config(Path(first.stdout.strip()), {}, "cpu")  # as if it ran
    result = dry("like last but with program actions")
    assert result.exit_code == 0, result.output
    plan = json.loads((Path(result.stdout.strip()) / "plan.json").read_text())
    assert [a["overrides"]["action"] for a in plan["arms"]] == ["program"]


def test_a_claude_fallback_is_said_on_the_console_and_in_a_refusal(claude):
    for _ in range(3):  # the SDK's own retries
        claude.reply_overloaded()
    result = run("experiment", "run toy", "--budget", "smoke", "--model", "tiny", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "planner: Claude could not plan (" in result.stderr
    for _ in range(3):
        claude.reply_overloaded()
    result = run("experiment", "fly to the moon", "--model", "tiny", "--dry-run")
    assert result.exit_code == 1
    assert "Claude was tried first and failed" in result.output.strip().splitlines()[-1]


# --- dry runs ---
def test_a_dry_run_prints_the_arms_table_costs_and_an_estimate():
    result = dry("ablate reuse on toy", "--budget", "smoke")
    assert result.exit_code == 0, result.output
    text = result.stderr
    header = next(ln for ln in text.splitlines() if ln.startswith("arm "))
    for column in ("overrides", "action", "groups x size / step", "rollouts", "new tokens <=",
                   "est. time"):
        assert column in header
    rows = {ln.split()[0]: ln for ln in text.splitlines()
            if ln.split()[:1] in (["full"], ["eps_greedy"], ["no_reuse"])}
    assert set(rows) == {"full", "eps_greedy", "no_reuse"}
    assert "reuse=none" in rows["no_reuse"] and "construction" in rows["full"]
    assert "seeds [0], 2 steps per run" in text
    assert re.search(r"total: [\d,]+ rollouts, <= [\d,]+ new tokens; estimated ", text)
    assert "no run of tiny on cpu" in text  # no measured rate yet, and no default for tiny


def test_the_estimate_comes_from_a_measured_rate_once_one_ran(reports_in_tmp):
    first = dry("run toy", "--budget", "smoke")
    folder = Path(first.stdout.strip())
    records.write_config(folder, {}, "cpu")
    steps = records.CsvLog(folder / "data" / "steps.csv", records.STEP_COLUMNS)
    steps.append([{"arm": "full", "seed": 0, "step": s, "time/step_s": 8.0}
                  for s in range(2)])  # 8 s per step of 4 rollouts: 2 s per rollout
    text = dry("ablate reuse on toy", "--budget", "smoke").stderr
    assert f"2.00 s per rollout, measured in {folder.name} (toy)" in text


def test_sweep_dry_run_plans_the_first_experiment_and_runs_nothing(reports_in_tmp):
    result = run("sweep", "run toy", "--budget", "smoke", "--model", "tiny", "--reviewer",
                 "offline", "--dry-run")
    assert result.exit_code == 0, result.output
    root = Path(result.stdout.strip())
    assert (root / "sweep.json").exists() and "est. time" in result.stderr
    assert not list(root.glob("*/config.json"))  # nothing ran
    status = run("status", str(root))
    assert status.exit_code == 0 and "sweep stopped, experiments: 1 pending" in status.output


def test_experiment_help_lists_knobs_and_ablations():
    text = run("experiment", "--help").output
    for word in ("learning rate", "kl_target", "best_of_n", "no_reuse", "does <component>",
                 "with N seeds", "circle packing"):
        assert word in " ".join(text.split()), word


# --- folders by name ---
def test_every_folder_command_takes_a_path_a_name_a_prefix_or_last(reports_in_tmp):
    planned = Path(dry("run toy", "--budget", "smoke").stdout.strip())
    ran = Path(dry("ablate reuse on toy", "--budget", "smoke").stdout.strip())
    records.write_config(ran, {}, "cpu")
    time.sleep(0.01)
    later_dry = Path(dry("run toy", "--budget", "smoke").stdout.strip())  # newer, never ran
    for ref in (str(ran), ran.name, ran.name[:17] + "ablate", "last"):
        result = run("status", ref)
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"{ran.name}: stopped, 0/6 steps"), (ref, result.output)
        result = run("comment", ref, "more seeds please")
        assert result.exit_code == 0 and Path(result.output.strip()) == ran / "comments.md"
        assert run("report", ref).exit_code == 0
    assert run("status", planned.name).output.startswith(f"{planned.name}: planned")
    assert later_dry.name != ran.name
    result = run("status", "2026")
    assert result.exit_code == 1 and "is ambiguous" in result.output
    assert str(reports_in_tmp) in result.output  # where it looked


def test_nothing_found_prints_the_reports_root(tmp_path):
    result = run("reports", HARNESS_REPORTS_DIR=str(tmp_path / "empty"))
    assert f"no experiments under {tmp_path / 'empty'}" in result.output
    result = run("review", "last", HARNESS_REPORTS_DIR=str(tmp_path / "empty"))
    assert result.exit_code == 1 and str(tmp_path / "empty") in result.output


def test_reports_lists_a_sweeps_experiments_under_it(reports_in_tmp):
    root = Path(run("sweep", "run toy", "--budget", "smoke", "--model", "tiny", "--reviewer",
                    "offline", "--dry-run").stdout.strip())
    lines = run("reports").output.splitlines()
    at = lines.index(f"{root.name}/  (sweep)")
    assert lines[at + 1].startswith(f"  {root.name}/01-")
    name = lines[at + 1].split()[0]
    assert run("status", name).output.startswith(f"{name.split('/')[-1]}: planned")


# --- progress in a log ---
def test_progress_prints_one_plain_line_per_step_when_not_a_terminal(tmp_path, tiny_policy,
                                                                     capsys):
    from harness.base.config import make_config
    from harness.base.records import RunPaths
    from harness.loop.ttt import run_ttt

    cfg = make_config("smoke", env="toy", model="tiny", device="cpu", steps=2)
    run_ttt(cfg, RunPaths.run_folder(tmp_path), progress=True, policy=tiny_policy)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("toy default")]
    assert len(lines) == 2, lines
    assert re.fullmatch(r"toy default s0: step 1/2, best \S+ \(higher is better\), valid \d+%, "
                        r"[\d.]+ s/step, ETA \d+m\d\ds", lines[0]), lines[0]
    assert "step 2/2" in lines[1] and lines[1].endswith("ETA 0m00s")


# --- the /experiment command, as Claude Code would run it ---
def shell_steps(command_file: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", command_file.read_text(), re.DOTALL)


def test_the_experiment_commands_shell_steps_start_poll_and_read_a_tiny_experiment(tmp_path):
    start, poll, read = (textwrap_dedent(s) for s in shell_steps(COMMANDS / "experiment.md"))
    env = os.environ | {"ARGUMENTS": "run toy", "HARNESS_MODEL": "tiny",
                        "HARNESS_BUDGET": "smoke", "HARNESS_REPORTS_DIR": str(tmp_path),
                        "OMP_NUM_THREADS": "1",
                        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("ANTHROPIC_API_KEY", None)
    started = subprocess.run(["bash", "-c", start], env=env, capture_output=True, text=True,
                             timeout=120)
    assert started.returncode == 0, started.stderr
    folder = started.stdout.strip().splitlines()[-1]
    assert "est. time" in started.stderr  # the plan, before it runs
    env["dir"] = folder
    fast_poll = poll.replace("sleep 60;", "sleep 1;")  # the same poll, without the long wait
    seen, last_change, last = [], time.monotonic(), ""
    while True:  # a deadline that follows progress: fail only when nothing moves for 5 min
        line = subprocess.run(["bash", "-c", fast_poll], env=env, capture_output=True,
                              text=True, timeout=60).stdout.strip()
        seen.append(line.split(",")[0])
        if line != last:
            last, last_change = line, time.monotonic()
        if ": finished" in line or ": stopped" in line:
            break
        assert time.monotonic() - last_change < 300, (line, Path(folder, "run.log").read_text())
    assert ": finished, 2/2 steps, 1/1 runs finished" in line, Path(folder, "run.log").read_text()
    report = subprocess.run(["bash", "-c", read], env=env, capture_output=True, text=True,
                            timeout=60)
    assert report.returncode == 0 and "# " in report.stdout and "full" in report.stdout
    log = Path(folder, "run.log").read_text()
    assert "toy full s0: step 2/2" in log  # plain progress lines in the log, no bar


def textwrap_dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text)


def test_the_readme_command_table_lists_every_command():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("| command | what it does |"):]
    table = table[:table.index("\n\n")]
    for name in main.commands:
        assert f"`harness {name}" in table, name

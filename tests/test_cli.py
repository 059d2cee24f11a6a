"""The command line end to end through click's CliRunner."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_envs_lists_each_env_with_its_direction():
    result = run("envs")
    assert result.exit_code == 0
    assert "erdos" in result.output and "lower is better" in result.output


def test_score_prints_the_raw_objective_last(tmp_path):
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"sequence": [0.5] * 10}))
    result = run("score", "erdos", str(path))
    assert result.exit_code == 0
    assert float(result.output.strip().splitlines()[-1]) == pytest.approx(0.5)


def test_score_accepts_h_values_and_prints_json(tmp_path):
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"h_values": [0.25, 0.75, 0.5, 0.5]}))
    verdict = json.loads(run("score", "erdos", str(path), "--json").output)
    assert verdict["valid"] and verdict["reward"] == pytest.approx(1 / verdict["raw_score"])


def test_score_runs_a_program_in_the_sandbox(tmp_path):
    path = tmp_path / "cand.py"
    path.write_text("def run(seed, budget_s):\n    return [0.5] * 8\n")
    result = run("score", "erdos", str(path))
    assert result.exit_code == 0, result.output
    assert float(result.output.strip().splitlines()[-1]) == pytest.approx(0.5)


@pytest.mark.parametrize("content, reason", [
    ('{"sequence": [0.5, 2.0, 0.5, 0.5]}', "[0, 1]"),
    ("not json", "not valid JSON"),
    ('{"sequence": "abc"}', "sequence"),
])
def test_score_of_an_invalid_candidate_exits_1_with_one_line(tmp_path, content, reason):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run("score", "erdos", str(path))
    assert result.exit_code == 1
    assert reason in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["score", "nope", "x.json"], "unknown env 'nope'"),
    (["score", "erdos", "/no/such/file.json"], "cannot read"),
    (["discover", "--env", "nope"], "unknown env"),
    (["discover", "--env", "toy", "--set", "bogus=1"], "unknown config key 'bogus'"),
    (["discover", "--env", "toy", "--set", "steps=x"], "steps expects int"),
    (["discover", "--env", "toy", "--model", "no-such-model"], "unknown model"),
    (["discover", "--resume", "/no/such/run"], "not a run folder"),
])
def test_bad_input_gives_one_line_and_exit_1(args, message):
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_bad_discover_input_leaves_no_folder(reports_in_tmp):
    assert run("discover", "--env", "toy", "--model", "no-such-model").exit_code == 1
    assert not reports_in_tmp.exists() or not any(reports_in_tmp.iterdir())


def test_discover_smoke_writes_a_run_folder(reports_in_tmp):
    result = run("discover", "--env", "toy", "--model", "tiny", "--budget", "smoke",
                 "--set", "device=cpu", "--quiet")
    assert result.exit_code == 0, result.output
    [folder] = list(reports_in_tmp.iterdir())
    assert str(folder) in result.output and (folder / "data" / "steps.csv").exists()


def test_findings_for_an_unknown_env_lists_the_envs():
    result = run("findings", "--env", "nope")
    assert result.exit_code == 1 and "unknown env 'nope'" in result.output


def test_install_commands_into_an_unwritable_place_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run("install-commands", str(blocker / "sub"))
    assert result.exit_code == 1 and "cannot install into" in result.output
    assert "Traceback" not in result.output


def test_dry_run_of_the_paper_budget_prints_the_released_configuration(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = run("experiment", "run erdos", "--budget", "paper", "--dry-run")
    assert result.exit_code == 0, result.output
    cost = result.stderr
    for text in ("seeds [0, 1, 2], 50 steps per run", "64 x 8 = 512", "76,800",
                 "1,996,800,000", "steps 50,", "lr 4e-05,",
                 "LoRA rank 32,", "Adam (0.9, 0.95, 1e-08),", "clipping none,", "kl_coef 0,",
                 "temperature 1,", "max_new_tokens 26000,", "eval_timeout_s 1000,",
                 "atcoder_cases 150,", "reasoning auto"):
        assert text in cost, text
    assert "(released" not in cost  # nothing differs from the released configuration
    assert (Path(result.stdout.strip()) / "plan.json").exists()  # stdout: the folder alone


def test_dry_run_of_a_small_budget_marks_what_differs_from_the_released_one(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = run("experiment", "run erdos", "--budget", "small", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "eval_timeout_s 10 (released 1000)" in result.stderr
    assert "clipping none," in result.stderr and "LoRA rank 32," in result.stderr

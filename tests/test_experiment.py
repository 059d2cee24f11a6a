"""`harness experiment` end to end: the smoke budget with the tiny model on the toy env (CPU,
seconds), the folder it leaves, the report's numbers, Ctrl-C and resume, and the commands."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from procs import started

from harness.base import records, resources
from harness.cli import main
from harness.lab.offline_planner import offline_plan
from harness.lab.report import write_report

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REQUEST = "ablate reuse on toy"
ARMS = ["full", "eps_greedy", "no_reuse"]
FILES = ["plan.json", "config.json", "experiment.py", "report.md", "data/steps.csv",
         "data/rollouts.csv", "data/buffer.csv", "data/summary.csv",
         "figures/best_so_far.png", "figures/reward_distribution.png",
         "figures/arm_comparison.png", "figures/valid_fraction.png"]


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke experiment (3 arms x 1 seed x 2 steps), shared by the tests that read it."""
    root = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_REPORTS_DIR", str(root))
        mp.delenv("ANTHROPIC_API_KEY", raising=False)
        result = run("experiment", REQUEST, "--budget", "smoke", "--model", "tiny", "--quiet")
    assert result.exit_code == 0, result.output
    folder = Path(result.output.strip().splitlines()[-1])
    assert folder.parent == root and folder.name[16:] == "-ablate-reuse-on-toy"
    return folder


def test_a_smoke_experiment_leaves_every_file(smoke):
    for rel in FILES:
        assert (smoke / rel).exists(), rel
    for arm in ARMS:
        assert (smoke / "best" / f"{arm}-s0.score.json").exists()
    plan = json.loads((smoke / "plan.json").read_text())
    assert (plan["budget"], plan["model"], plan["device"]) == ("smoke", "tiny", "cpu")
    config = json.loads((smoke / "config.json").read_text())
    assert config["budget"] == "smoke" and config["seeds"] == [0]
    from harness.loop.sampling import native_bf16

    assert config["arms"]["no_reuse"] == {
        "overrides": {"reuse": "none"}, "action": "construction",
        "sampling": {"backend": "shared",
                     "linear_dtype": "bfloat16" if native_bf16() else "model"}}
    assert {"git_sha", "git_branch", "versions", "device", "command"} <= set(
        config["provenance"])


def test_every_csv_loads_with_one_row_per_arm_seed_and_step(smoke):
    tables = {p.name: pd.read_csv(p) for p in (smoke / "data").glob("*.csv")}
    assert set(tables) == {"steps.csv", "rollouts.csv", "buffer.csv", "summary.csv"}
    steps = tables["steps.csv"]
    assert sorted(map(tuple, steps[["arm", "seed", "step"]].values.tolist())) == sorted(
        (a, 0, s) for a in ARMS for s in (0, 1))
    assert len(tables["rollouts.csv"]) == 3 * 2 * 4
    assert tables["summary.csv"]["arm"].tolist() == ARMS


def test_the_reports_numbers_equal_those_computed_from_the_csvs(smoke):
    steps = pd.read_csv(smoke / "data" / "steps.csv")
    rollouts = pd.read_csv(smoke / "data" / "rollouts.csv")
    summary = pd.read_csv(smoke / "data" / "summary.csv").set_index("arm")
    report = (smoke / "report.md").read_text()
    for arm in ARMS:
        best = steps.loc[steps["arm"] == arm, "score/best"].max()  # toy: higher is better
        valid = rollouts.loc[rollouts["arm"] == arm, "valid"].mean()
        tokens = steps.loc[steps["arm"] == arm, "tokens/generated"].sum()
        row = summary.loc[arm]
        assert row["best_raw"] == pytest.approx(best) and row["n"] == 1
        assert row["valid_frac"] == pytest.approx(valid) and row["tokens"] == tokens
        [line] = [ln for ln in report.splitlines() if ln.startswith(f"| {arm}") and "runs" in ln]
        assert f"| {best:.6g} | {best:.6g} (n=1) | {valid:.0%} | 8 | {tokens} |" in line
        assert "finished (1/1 runs, 2/2 steps)" in line
    assert "**Status: complete.**" in report and "higher is better" in report
    # n=1 a side: each comparison is a tie or "not enough seeds", never a win
    comparisons = [ln for ln in report.splitlines() if "` vs `" in ln]
    assert comparisons and all("within noise / not enough seeds (n=1)" in ln
                               or "equal: no effect at this budget" in ln for ln in comparisons)
    for figure in ("best_so_far", "reward_distribution", "arm_comparison"):
        assert f"(figures/{figure}.png)" in report
    capped = (~rollouts["finished"].astype(bool)).mean()
    assert (f"Actions: {rollouts['tokens'].mean():.0f} tokens per rollout on average; "
            f"{rollouts['complete'].mean():.0%} hold a complete answer; {capped:.0%} ran to "
            "the token cap.") in report


def test_a_report_diagnoses_an_arm_whose_actions_are_almost_all_invalid(tmp_path):
    # a hand-written folder: the report is rendered from the folder's files only
    plan = offline_plan("compare program vs construction on toy", "smoke", "tiny", None, "cpu")
    (tmp_path / "plan.json").write_text(json.dumps(plan.to_dict()))
    steps = records.CsvLog(tmp_path / "data" / "steps.csv", records.STEP_COLUMNS)
    rollouts = records.CsvLog(tmp_path / "data" / "rollouts.csv", records.ROLLOUT_COLUMNS)
    for arm, valid in (("program", [False] * 4), ("construction", [True, True, True, False])):
        for step in (0, 1):
            steps.append([{"arm": arm, "seed": 0, "step": step, "score/best": 4 + step,
                           "valid_frac": sum(valid) / 4, "tokens/generated": 10,
                           "time/step_s": 1.0}])
            rollouts.append([{"arm": arm, "seed": 0, "step": step, "reward": 0.5 * v,
                              "valid": v, "message": "ok" if v else
                              "no ``` code block in the answer"} for v in valid])
    report = write_report(tmp_path).read_text()
    assert "**Status: incomplete (0 of 2 runs finished).**" in report  # no best/ files
    assert "Almost nothing was valid in arm(s) program (0.0% of 8 rollouts)" in report
    assert "too weak for `toy` with program actions" in report and "construction" in report
    assert "- 10 × (62% of rollouts) ```` no ``` code block in the answer ````" in report
    assert "| 1 | 0% | 75% |" in report


def test_report_regenerates_summary_and_figures_from_the_files(smoke):
    before = (smoke / "data" / "summary.csv").read_text()
    (smoke / "data" / "summary.csv").unlink()
    for png in (smoke / "figures").glob("*.png"):
        png.unlink()
    result = run("report", str(smoke))
    assert result.exit_code == 0 and result.output.strip() == str(smoke / "report.md")
    assert (smoke / "data" / "summary.csv").read_text() == before
    assert len(list((smoke / "figures").glob("*.png"))) == 4


def test_reports_lists_experiments_newest_first_and_index_has_a_row_each(smoke, monkeypatch):
    monkeypatch.setenv("HARNESS_REPORTS_DIR", str(smoke.parent))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    planned = run("experiment", "run toy", "--budget", "smoke", "--model", "tiny", "--dry-run")
    assert planned.exit_code == 0, planned.output
    lines = run("reports").output.strip().splitlines()
    assert lines[0].startswith(Path(planned.stdout.strip()).name) and "planned" in lines[0]
    assert lines[1].startswith(smoke.name) and "complete" in lines[1]
    assert "(higher is better)" in lines[1]
    run("report", str(smoke))  # INDEX.md is rebuilt from every folder
    index = (smoke.parent / "INDEX.md").read_text()
    assert f"[{smoke.name}]({smoke.name}/report.md)" in index and "| run toy |" in index


def test_dry_run_writes_the_folder_plan_and_script_only(reports_in_tmp, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = run("experiment", "tune entropic temperature on erdos", "--dry-run")
    assert result.exit_code == 0, result.output
    folder = Path(result.stdout.strip())  # stdout is the folder alone; the cost is on stderr
    assert sorted(p.name for p in folder.iterdir()) == ["experiment.py", "plan.json"]
    plan = json.loads((folder / "plan.json").read_text())
    assert plan["budget"] == "small" and plan["model"] == "smollm2"  # the CPU defaults
    namespace = {}
    exec(compile((folder / "experiment.py").read_text(), "experiment.py", "exec"), namespace)
    assert namespace["PLAN"] == plan  # the script carries the plan: the folder is enough


def test_an_unplannable_request_gives_one_line_and_no_folder(reports_in_tmp, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result = run("experiment", "make it better", "--dry-run")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "tune <knob> on <env>" in result.output and "erdos" in result.output
    assert not reports_in_tmp.exists()
    assert run("report", "/no/such/folder").exit_code == 1


def test_a_claude_fallback_is_recorded_in_plan_json(reports_in_tmp, claude):
    for _ in range(3):  # the SDK's own retries (it honours retry-after-ms: 1)
        claude.reply_overloaded()
    result = run("experiment", "run toy", "--budget", "smoke", "--dry-run")
    assert result.exit_code == 0, result.output
    plan = json.loads((Path(result.stdout.strip()) / "plan.json").read_text())
    assert plan["planner"].startswith("offline (claude fallback: OverloadedError")


def test_ctrl_c_midway_leaves_a_report_and_the_script_resumes(tmp_path):
    root = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env |= {"HARNESS_REPORTS_DIR": str(root), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "harness", "experiment", REQUEST, "--budget", "smoke",
           "--model", "tiny", "--quiet"]
    with started(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                 text=True) as proc:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if list(root.glob("*/best/full-s0.score.json")):  # the first arm has finished
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    assert "Resume with: python" in output and "Traceback" not in output
    [folder] = list(root.glob("*-ablate-reuse-on-toy"))
    summary = pd.read_csv(folder / "data" / "summary.csv").set_index("arm")
    finished = [a for a in ARMS if summary.loc[a, "status"] == "finished"]
    assert finished[:1] == ["full"] and finished != ARMS
    report = (folder / "report.md").read_text()
    unfinished = [a for a in ARMS if a not in finished]
    assert (f"Finished arms: {', '.join(finished)}; not finished: {', '.join(unfinished)}"
            in report)
    before = pd.read_csv(folder / "data" / "steps.csv")

    resumed = subprocess.run([sys.executable, "experiment.py"], cwd=folder, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = pd.read_csv(folder / "data" / "steps.csv")
    assert not steps.duplicated(["arm", "seed", "step"]).any() and len(steps) == 6
    for arm in finished:  # finished arms are not redone
        pd.testing.assert_frame_equal(steps[steps["arm"] == arm], before[before["arm"] == arm])
    rollouts = pd.read_csv(folder / "data" / "rollouts.csv")
    assert rollouts.groupby(["arm", "step"]).size().tolist() == [4] * 6
    assert "**Status: complete.**" in (folder / "report.md").read_text()


def test_install_commands_copies_the_claude_code_commands(tmp_path):
    result = run("install-commands", str(tmp_path))
    assert result.exit_code == 0, result.output
    target = tmp_path / ".claude" / "commands"
    assert sorted(p.name for p in target.iterdir()) == ["experiment.md", "review.md",
                                                        "sweep.md"]
    text = (target / "experiment.md").read_text()
    assert "$ARGUMENTS" in text and "harness experiment" in text and "report.md" in text
    skills = tmp_path / ".claude" / "skills"  # the same workflows as skills
    assert sorted(p.name for p in skills.iterdir()) == ["experiment", "review", "sweep"]
    skill = (skills / "experiment" / "SKILL.md").read_text()
    assert skill.startswith("---\nname: experiment\ndescription: ") and text[4:] in skill


def test_shipped_folders_are_found_where_the_package_is_installed(tmp_path, monkeypatch):
    # an install where harness/ and the data packages are not siblings: importlib finds them
    site = tmp_path / "site"
    for name in ("commands", "experiments"):
        src = resources.resource_dir(name)
        (site / name).mkdir(parents=True)
        for f in src.iterdir():
            if f.is_file():
                (site / name / f.name).write_bytes(f.read_bytes())
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(site))
    fake = tmp_path / "other" / "harness" / "base" / "x.py"
    monkeypatch.setattr(resources, "__file__", str(fake))
    assert resources.resource_dir("commands") == site / "commands"
    assert (resources.resource_dir("experiments") / "experiment.py.j2").exists()
    assert len(resources.install_commands(tmp_path / "proj")) == 6  # commands and skills


def test_the_listed_status_comes_from_the_data_not_an_old_report(smoke, tmp_path):
    import shutil

    from harness.lab.report import list_experiments

    copy = tmp_path / smoke.name
    shutil.copytree(smoke, copy)
    stale = pd.read_csv(copy / "data" / "summary.csv")
    stale["status"], stale["runs_finished"] = "not started", 0
    stale.to_csv(copy / "data" / "summary.csv", index=False)  # as a Ctrl-C'd report left it
    (copy / "data" / "steps.csv").write_text("arm,seed,step\n")  # not merged yet: shards only
    [listed] = list_experiments(tmp_path)
    assert listed["status"] == "complete"

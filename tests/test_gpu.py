"""CUDA paths (run on a GPU machine: `pytest -m gpu`); skipped on CPU."""

import pandas as pd
import pytest
import torch

from harness.config import make_config
from harness.model import load_policy
from harness.ttt import run_ttt


@pytest.mark.gpu
def test_a_multi_step_run_works_on_cuda_in_bf16(tmp_path):
    policy = load_policy("tiny", "cuda")
    assert policy.dtype == torch.bfloat16
    cfg = make_config("smoke", env="toy", model="tiny", device="cuda", steps=3)
    run_ttt(cfg, tmp_path, progress=False, policy=policy)
    steps = pd.read_csv(tmp_path / "data" / "steps.csv")
    assert steps["step"].tolist() == [0, 1, 2]
    # bf16 sampler vs bf16 learner: log-probs agree to bf16 precision
    assert steps["kl"].abs().max() < 0.05


@pytest.mark.gpu
def test_sampler_logprobs_match_the_learner_on_cuda():
    from harness.sampling import sample
    from harness.train import action_logprobs

    policy = load_policy("tiny", "cuda")
    rollouts = sample(policy, ["hello"], group_size=4, max_new_tokens=16)
    with torch.no_grad():
        recomputed = action_logprobs(policy, rollouts)
    for r, logp in zip(rollouts, recomputed, strict=True):
        assert torch.allclose(logp.float().cpu(), torch.tensor(r.logprobs), atol=0.1)

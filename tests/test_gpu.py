"""CUDA paths (run on a GPU machine: `pytest -m gpu`); skipped on CPU."""

import pandas as pd
import pytest
import torch

from harness.base.config import make_config
from harness.base.records import RunPaths
from harness.loop.model import load_policy
from harness.loop.ttt import run_ttt


@pytest.mark.gpu
def test_a_multi_step_run_works_on_cuda_in_bf16(tmp_path):
    policy = load_policy("tiny", "cuda")
    assert policy.dtype == torch.bfloat16
    cfg = make_config("smoke", env="toy", model="tiny", device="cuda", steps=3)
    run_ttt(cfg, RunPaths.run_folder(tmp_path), progress=False, policy=policy)
    steps = pd.read_csv(tmp_path / "data" / "steps.csv")
    assert steps["step"].tolist() == [0, 1, 2]
    # bf16 sampler vs bf16 learner: log-probs agree to bf16 precision
    assert steps["kl"].abs().max() < 0.05


@pytest.mark.gpu
def test_sampler_logprobs_match_the_learner_on_cuda():
    from harness.loop.sampling import sample
    from harness.loop.train import action_logprobs

    policy = load_policy("tiny", "cuda")
    rollouts = sample(policy, ["hello"], group_size=4, max_new_tokens=16)
    with torch.no_grad():
        recomputed = action_logprobs(policy, rollouts)
    for r, logp in zip(rollouts, recomputed, strict=True):
        assert torch.allclose(logp.float().cpu(), torch.tensor(r.logprobs), atol=0.1)


def _spread_policy(dtype: torch.dtype):
    """Tiny model on CUDA with spread weights (greedy tokens vary) and a three-prompt batch."""
    from test_fast_sampler import spread_weights

    from harness.loop.sampling import left_pad

    policy = load_policy("tiny", "cuda")
    policy.model.to(dtype)
    spread_weights(policy.model)
    texts = ["hello there", "a much longer prompt, with many more words in it", "x"]
    return policy, left_pad(policy, [policy.tokenizer(t)["input_ids"] for t in texts])


@pytest.mark.gpu
def test_the_cuda_graph_sampler_equals_eager_and_a_plain_loop_in_fp32(monkeypatch):
    from test_fast_sampler import greedy_reference

    from harness.loop import fast_sampler

    replays = []

    class CountingGraph(torch.cuda.CUDAGraph):
        def replay(self):
            replays.append(1)
            super().replay()

    monkeypatch.setattr(torch.cuda, "CUDAGraph", CountingGraph)
    policy, (input_BP, mask_BP) = _spread_policy(torch.float32)
    n, pad = 40, policy.tokenizer.pad_token_id
    graph_BN, graph_lp_BN = fast_sampler.generate(policy.model, input_BP, mask_BP, n, 1.0, -1,
                                                  pad, greedy=True)[:2]
    assert len(replays) == n - 1 - fast_sampler.WARMUP_STEPS  # the graph did the decoding
    eager_BN, eager_lp_BN = fast_sampler.generate(policy.model, input_BP, mask_BP, n, 1.0, -1,
                                                  pad, greedy=True, cuda_graph=False)[:2]
    assert torch.equal(graph_BN, eager_BN)
    assert torch.allclose(graph_lp_BN, eager_lp_BN, atol=1e-5)
    assert torch.equal(graph_BN, greedy_reference(policy.model, input_BP, mask_BP, n))


@pytest.mark.gpu
def test_the_cuda_graph_sampler_agrees_with_a_plain_loop_in_bf16():
    """Greedy tokens equal the reference up to bf16 near-ties; sampled log-probs within bf16."""
    from test_fast_sampler import full_logits, greedy_reference

    from harness.loop import fast_sampler

    policy, (input_BP, mask_BP) = _spread_policy(torch.bfloat16)
    n, pad = 40, policy.tokenizer.pad_token_id
    with torch.no_grad():
        fast_BN, _ = fast_sampler.generate(policy.model, input_BP, mask_BP, n, 1.0, -1, pad,
                                           greedy=True)[:2]
        ref_BN = greedy_reference(policy.model, input_BP, mask_BP, n)
        logits_BNV = full_logits(policy.model, input_BP, mask_BP, fast_BN).float()
    for b in range(fast_BN.shape[0]):
        differ = (fast_BN[b] != ref_BN[b]).nonzero()
        if len(differ):  # the prefixes agree up to t: both tokens must be (near-)argmax there
            t = int(differ[0])
            logits_V = logits_BNV[b, t]
            gap = logits_V[ref_BN[b, t]] - logits_V[fast_BN[b, t]]
            assert gap.abs() <= 0.05 + 0.01 * logits_V.abs().max(), (b, t, float(gap))

    torch.manual_seed(0)
    with torch.no_grad():
        tokens_BN, logprobs_BN = fast_sampler.generate(policy.model, input_BP, mask_BP, n, 0.7,
                                                       -1, pad)[:2]
        expected_BN = torch.log_softmax(
            full_logits(policy.model, input_BP, mask_BP, tokens_BN).float() / 0.7, -1
        ).gather(-1, tokens_BN[..., None])[..., 0]
    assert (logprobs_BN - expected_BN).abs().max() < 0.05 + 0.01 * expected_BN.abs().max()


@pytest.mark.gpu
def test_the_loop_samples_with_the_fast_sampler_on_cuda_unless_turned_off(tmp_path,
                                                                          monkeypatch):
    from harness.loop import fast_sampler

    calls = []
    real = fast_sampler.generate
    monkeypatch.setattr(fast_sampler, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = make_config("smoke", env="toy", model="tiny", device="cuda", steps=1)
    run_ttt(cfg, RunPaths.run_folder(tmp_path / "auto"), progress=False,
            policy=load_policy("tiny", "cuda"))
    assert calls
    calls.clear()
    run_ttt(cfg.replace(fast_sampler="off"), RunPaths.run_folder(tmp_path / "off"), progress=False,
            policy=load_policy("tiny", "cuda"))
    assert not calls

"""The fast sampler (static cache; CUDA graph on GPU, eager here) against plain references."""

import pytest
import torch

from harness.base.config import Config, ConfigError
from harness.base.records import RunPaths
from harness.loop import fast_sampler, sampling, shared_sampler
from harness.loop.model import add_lora, load_policy
from harness.loop.sampling import backend, left_pad, linear_dtype, sample
from harness.loop.train import action_logprobs

N = 12  # new tokens per row


@pytest.fixture(scope="module")
def policy(one_torch_thread):
    """The tiny model with larger random weights, so greedy decoding does not repeat one token."""
    policy = load_policy("tiny", "cpu")
    spread_weights(policy.model)
    return policy


@torch.no_grad()
def spread_weights(model, std=0.2, seed=1):
    """Redraw every projection matrix (not the embeddings) with a larger std."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.ndim == 2 and "embed" not in name:
            p.copy_(torch.randn(p.shape, generator=gen) * std)


@pytest.fixture(scope="module")
def batch(policy):
    """Three prompts of different lengths, left-padded."""
    texts = ["hello there", "a much longer prompt, with many more words in it", "x"]
    return left_pad(policy, [policy.tokenizer(t)["input_ids"] for t in texts])


def fast(policy, batch, n=N, eos_id=-1, **kwargs):
    input_BP, mask_BP = batch
    return fast_sampler.generate(policy.model, input_BP, mask_BP, n, kwargs.pop("temperature", 1.0),
                                 eos_id, policy.tokenizer.pad_token_id, **kwargs)[:2]


def full_logits(model, input_BP, mask_BP, tokens_BN):
    """Logits at every new-token position, from one forward over prompt + tokens (no cache)."""
    ids = torch.cat([input_BP, tokens_BN], dim=1)
    mask = torch.cat([mask_BP, torch.ones_like(tokens_BN)], dim=1)
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=position).logits
    return logits[:, input_BP.shape[1] - 1:-1]  # (B, N, V)


@torch.no_grad()
def greedy_reference(model, input_BP, mask_BP, n):
    """Plain greedy loop: recompute the whole sequence for every token (no cache)."""
    ids, mask = input_BP, mask_BP
    for _ in range(n):
        position = (mask.cumsum(-1) - 1).clamp(min=0)
        logits_BV = model(input_ids=ids, attention_mask=mask, position_ids=position).logits[:, -1]
        ids = torch.cat([ids, logits_BV.argmax(-1, keepdim=True)], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return ids[:, input_BP.shape[1]:]


def test_greedy_tokens_equal_a_plain_full_recompute_loop(policy, batch):
    tokens_BN, _ = fast(policy, batch, greedy=True)
    assert tokens_BN.shape == (3, N)
    assert torch.equal(tokens_BN, greedy_reference(policy.model, *batch, N))
    assert len(set(tokens_BN[0].tolist())) > N // 2  # a real test: the tokens vary


@torch.no_grad()
def test_sampled_logprobs_match_a_teacher_forced_recomputation(policy, batch):
    torch.manual_seed(0)
    tokens_BN, logprobs_BN = fast(policy, batch, temperature=0.7)
    logits_BNV = full_logits(policy.model, *batch, tokens_BN)
    expected_BN = torch.log_softmax(logits_BNV.float() / 0.7, -1).gather(
        -1, tokens_BN[..., None])[..., 0]
    assert torch.allclose(logprobs_BN, expected_BN, atol=1e-4)


def test_each_row_stops_at_its_own_eos(policy, batch):
    free_BN, free_lp_BN = fast(policy, batch, greedy=True)
    eos = free_BN[0, 3].item()  # row 0 emits this at step 3
    assert eos not in free_BN[0, :3].tolist() and eos not in free_BN[1:].flatten().tolist()
    pad = policy.tokenizer.pad_token_id
    tokens_BN, logprobs_BN = fast(policy, batch, eos_id=eos, greedy=True)
    assert torch.equal(tokens_BN[0, :4], free_BN[0, :4])
    assert (tokens_BN[0, 4:] == pad).all() and (logprobs_BN[0, 4:] == 0).all()
    assert torch.equal(tokens_BN[1:], free_BN[1:])  # the other rows run on
    assert torch.equal(logprobs_BN[1:], free_lp_BN[1:])
    alone_BN, _ = fast(policy, (batch[0][:1], batch[1][:1]), eos_id=eos, greedy=True)
    assert alone_BN.shape == (1, 4)  # all rows done: the loop stops early


def test_lora_is_merged_for_sampling_and_restored_bit_exactly(batch):
    policy = load_policy("tiny", "cpu")
    add_lora(policy, rank=4)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5, generator=gen)
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    pointers = {n: p.data_ptr() for n, p in policy.model.named_parameters()}
    q_proj = policy.model.base_model.model.model.layers[0].self_attn.q_proj
    with torch.no_grad(), fast_sampler.merged_lora(policy.model):
        # in place: same storage (a captured graph and the optimizer see the merged weights)
        assert q_proj.base_layer.weight.data_ptr() == pointers[
            "base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"]
        assert torch.allclose(q_proj.base_layer.weight,
                              before["base_model.model.model.layers.0.self_attn.q_proj"
                                     ".base_layer.weight"] + q_proj.get_delta_weight("default"))
        assert q_proj.merged
    assert not q_proj.merged

    tokens_BN, _ = fast(policy, batch, greedy=True)
    assert torch.equal(tokens_BN, greedy_reference(policy.model, *batch, N))  # unmerged peft
    with policy.model.disable_adapter():
        assert not torch.equal(tokens_BN, greedy_reference(policy.model, *batch, N))
    for name, p in policy.model.named_parameters():
        assert torch.equal(p, before[name]) and p.data_ptr() == pointers[name], name


def test_a_seed_reproduces_the_samples(policy, batch):
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        runs.append(fast(policy, batch)[0])
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_sample_builds_the_same_rollouts_from_either_backend(policy):
    eos = policy.tokenizer.eos_token_id
    for setting in ("on", "off", "shared"):
        torch.manual_seed(0)
        rollouts = sample(policy, ["count to three", "hi"], group_size=2, max_new_tokens=N,
                          answer_prefix="[", fast_sampler=setting)
        prefix = policy.tokenizer("[", add_special_tokens=False)["input_ids"]
        assert [r.group for r in rollouts] == [0, 0, 1, 1]
        for r in rollouts:
            assert r.prompt_ids[-len(prefix):] == prefix and r.text.startswith("[")
            assert len(r.logprobs) == r.num_tokens and all(lp <= 0 for lp in r.logprobs)
            assert r.finished == (r.action_ids[-1] == eos)
            assert r.finished or r.num_tokens == N


def test_auto_picks_the_graph_sampler_on_cuda_and_the_shared_prompt_one_on_cpu():
    assert backend("auto", torch.device("cuda")) == "fast"
    assert backend("auto", torch.device("cpu")) == "shared"
    assert backend("on", torch.device("cpu")) == "fast"
    assert backend("off", torch.device("cuda")) == "generate"
    assert backend("shared", torch.device("cuda")) == "shared"
    assert Config().fast_sampler == "auto"
    with pytest.raises(ConfigError, match="fast_sampler must be one of auto, on, off, shared"):
        Config(fast_sampler="yes")


def test_bf16_linears_change_only_the_products_and_leave_the_model_as_it_was(policy, batch):
    """`linears_in`: the logits move by bf16 rounding (a little, but they move), and the
    weights and the modules' forwards are the model's own again afterwards."""
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    with torch.no_grad():
        exact = policy.model(input_ids=batch[0], attention_mask=batch[1]).logits
        with shared_sampler.linears_in(policy.model, torch.bfloat16):
            cast = policy.model(input_ids=batch[0], attention_mask=batch[1]).logits
        again = policy.model(input_ids=batch[0], attention_mask=batch[1]).logits
    assert cast.dtype == torch.float32 and torch.equal(again, exact)
    error = ((cast - exact).abs().max() / exact.abs().max()).item()
    assert 0 < error < 0.05, error
    assert all(torch.equal(p, before[n]) for n, p in policy.model.named_parameters())
    assert not any("forward" in vars(m) for m in policy.model.modules())


def test_bf16_sampling_records_the_log_probs_it_drew_from(tiny_policy):
    """sample_dtype=bfloat16: the recorded log-probs are the bf16 sampler's, near the fp32
    learner's but not equal to them (the drift training's importance ratio sees); fp32
    sampling gives the learner's own."""
    drift = {}
    for dtype in ("model", "bfloat16"):
        torch.manual_seed(0)
        rollouts = sample(tiny_policy, ["hello there", "a longer prompt"], 3, N,
                          fast_sampler="shared", sample_dtype=dtype)
        with torch.no_grad():
            learner = action_logprobs(tiny_policy, rollouts)
        drift[dtype] = max((lp - torch.tensor(r.logprobs)).abs().max().item()
                           for r, lp in zip(rollouts, learner, strict=True))
    assert drift["model"] < 1e-4 < drift["bfloat16"] < 0.1, drift


def test_sample_dtype_casts_only_the_shared_sampler_and_auto_needs_native_bf16(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert linear_dtype("model", cpu, "shared") is None
    assert linear_dtype("bfloat16", cpu, "shared") == torch.bfloat16
    assert linear_dtype("bfloat16", cpu, "generate") is None  # the reference stays exact
    assert linear_dtype("auto", cuda, "shared") is None  # CUDA runs bf16 already
    for native in (True, False):
        monkeypatch.setattr(sampling, "native_bf16", lambda native=native: native)
        assert linear_dtype("auto", cpu, "shared") == (torch.bfloat16 if native else None)
    assert Config().sample_dtype == "auto"
    with pytest.raises(ConfigError, match="sample_dtype must be one of auto, model, bfloat16"):
        Config(sample_dtype="fp16")


def test_the_loop_with_the_fast_sampler_moves_lora_and_leaves_the_base_bit_identical(
        tmp_path, one_torch_thread):
    from harness.base.config import make_config
    from harness.loop.ttt import run_ttt

    policy = load_policy("tiny", "cpu")
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    cfg = make_config("smoke", env="toy", model="tiny", device="cpu", fast_sampler="on")
    # samples merged, trains unmerged
    run_ttt(cfg, RunPaths.run_folder(tmp_path), progress=False, policy=policy)
    params = dict(policy.model.named_parameters())
    assert any(p.abs().sum() > 0 for n, p in params.items() if "lora_B" in n)
    for name, p in params.items():
        if "lora_" not in name:
            key = name.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(p, before[key]), name

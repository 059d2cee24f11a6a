"""Sampling log-probs and the LoRA policy-gradient step on the tiny model."""

import torch

from harness.model import add_lora
from harness.sampling import sample
from harness.train import action_logprobs, make_optimizer, policy_gradient_step


def test_sampler_logprobs_equal_the_learners_recomputation(tiny_policy):
    torch.manual_seed(0)
    rollouts = sample(tiny_policy, ["hello", "a longer prompt here"], group_size=2,
                      max_new_tokens=12)
    assert [r.group for r in rollouts] == [0, 0, 1, 1]
    with torch.no_grad():
        recomputed = action_logprobs(tiny_policy, rollouts)
    for r, logp in zip(rollouts, recomputed, strict=True):
        assert len(r.logprobs) == r.num_tokens > 0
        assert torch.allclose(logp, torch.tensor(r.logprobs), atol=1e-4)


def test_answer_prefix_is_part_of_the_prompt_and_of_the_text(tiny_policy):
    rollouts = sample(tiny_policy, ["list please"], group_size=1, max_new_tokens=4,
                      answer_prefix="[")
    prefix_id = tiny_policy.tokenizer("[", add_special_tokens=False)["input_ids"][-1]
    assert rollouts[0].prompt_ids[-1] == prefix_id and rollouts[0].text.startswith("[")


def test_a_policy_gradient_step_moves_only_lora_and_raises_the_rewarded_action(tiny_policy):
    torch.manual_seed(0)
    add_lora(tiny_policy, rank=4)
    rollouts = sample(tiny_policy, ["hello"], group_size=2, max_new_tokens=8)
    before = {n: p.detach().clone() for n, p in tiny_policy.model.named_parameters()}
    with torch.no_grad():
        logp_before = action_logprobs(tiny_policy, rollouts)[0].sum()
    optimizer = make_optimizer(tiny_policy, 1e-2)
    for _ in range(3):
        stats = policy_gradient_step(tiny_policy, optimizer, rollouts, [1.0, -1.0])
    with torch.no_grad():
        logp_after = action_logprobs(tiny_policy, rollouts)[0].sum()
    assert logp_after > logp_before
    moved = {n for n, p in tiny_policy.model.named_parameters()
             if not torch.equal(p.detach(), before[n])}
    assert moved and all("lora_" in n for n in moved)
    assert stats["tokens/train"] == sum(r.num_tokens for r in rollouts)


def test_zero_advantages_take_no_step(tiny_policy):
    add_lora(tiny_policy, rank=4)
    rollouts = sample(tiny_policy, ["hello"], group_size=2, max_new_tokens=4)
    before = [p.detach().clone() for p in tiny_policy.model.parameters()]
    stats = policy_gradient_step(tiny_policy, make_optimizer(tiny_policy, 1e-2), rollouts,
                                 [0.0, 0.0])
    assert stats["tokens/train"] == 0
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, tiny_policy.model.parameters(),
                                                          strict=True))

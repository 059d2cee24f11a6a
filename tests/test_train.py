"""Sampling log-probs and the LoRA policy-gradient step on the tiny model."""

import pytest
import torch

from harness.loop.model import add_lora
from harness.loop.sampling import chat_prompt_ids, fitted_new_tokens, reasoning_switch, sample
from harness.loop.train import (
    action_logprobs,
    kl_penalized_advantages,
    make_optimizer,
    micro_batches,
    policy_gradient_step,
    trainable_parameters,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sampler_logprobs_equal_the_learners_recomputation(tiny_policy):
    torch.manual_seed(0)
    rollouts = sample(tiny_policy, ["hello", "a longer prompt here"], group_size=2,
                      max_new_tokens=12, sample_dtype="model")  # bf16 drifts: test_fast_sampler
    assert [r.group for r in rollouts] == [0, 0, 1, 1]
    with torch.no_grad():
        recomputed = action_logprobs(tiny_policy, rollouts)
    for r, logp in zip(rollouts, recomputed, strict=True):
        assert len(r.logprobs) == r.num_tokens > 0
        assert torch.allclose(logp, torch.tensor(r.logprobs), atol=1e-4)


def full_sequence_logprobs(policy, rollouts):
    """The reference: each rollout's prompt + action through the whole model, one by one."""
    out = []
    for r in rollouts:
        ids = torch.tensor([r.prompt_ids + r.action_ids])
        logits = policy.model(input_ids=ids).logits[0, len(r.prompt_ids) - 1:-1].float()
        out.append(torch.log_softmax(logits, -1).gather(-1, ids[0, len(r.prompt_ids):, None])[:, 0])
    return out


def test_a_shared_prompt_gives_the_full_sequence_logprobs_and_gradients(tiny_policy):
    torch.manual_seed(0)
    add_lora(tiny_policy, rank=4)
    for p in trainable_parameters(tiny_policy):  # LoRA B starts at 0: give it a gradient path
        p.data.normal_(0, 0.05)
    rollouts = sample(tiny_policy, ["hello", "a longer prompt here"], group_size=3,
                      max_new_tokens=10)
    grads = []
    for fn in (full_sequence_logprobs, action_logprobs):
        tiny_policy.model.zero_grad(set_to_none=True)
        logprobs = fn(tiny_policy, rollouts)
        sum(lp.sum() * (i + 1) for i, lp in enumerate(logprobs)).backward()
        grads.append([p.grad.clone() for p in trainable_parameters(tiny_policy)])
        if fn is full_sequence_logprobs:
            reference = [lp.detach() for lp in logprobs]
    for ref, shared in zip(reference, logprobs, strict=True):
        assert torch.allclose(shared.detach(), ref, atol=1e-5)
    for g_ref, g_shared in zip(*grads, strict=True):
        assert torch.allclose(g_shared, g_ref, atol=1e-5, rtol=1e-4)


def test_micro_batches_never_mix_prompts_and_cap_their_size(tiny_policy):
    rollouts = sample(tiny_policy, ["hello", "other"], group_size=3, max_new_tokens=2)
    items = [(r, 1.0) for r in rollouts]
    chunks = micro_batches(items, 2)
    assert [len(c) for c in chunks] == [2, 1, 2, 1]
    assert all(len({tuple(r.prompt_ids) for r, _ in c}) == 1 for c in chunks)


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


def lora_away_from_base(policy, seed=0):
    """Fresh LoRA adapters with random B: the policy is no longer the base model."""
    torch.manual_seed(seed)
    add_lora(policy, rank=4)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)


def snapshot(policy):
    return {n: p.detach().clone() for n, p in policy.model.named_parameters()}


def restore(policy, state):
    with torch.no_grad():
        for n, p in policy.model.named_parameters():
            p.copy_(state[n])


def sgd(policy):  # the update is minus the gradient: weights compare gradients
    return torch.optim.SGD(trainable_parameters(policy), lr=1.0)


def test_the_kl_penalty_folds_into_per_token_advantages_as_computed_by_hand():
    sampler = [torch.tensor([-1.0, -2.0]), torch.tensor([-0.5])]
    base = [torch.tensor([-1.5, -1.0]), torch.tensor([-0.5])]
    # d = [0.5, -1.0], [0.0]; avg = -1/6; A_it = A_i + 0.3 * (avg - d_it)
    per_token, avg = kl_penalized_advantages([1.0, -1.0], sampler, base, kl_coef=0.3)
    assert avg == pytest.approx(-1 / 6)
    assert per_token[0].tolist() == pytest.approx([0.8, 1.25])
    assert per_token[1].tolist() == pytest.approx([-1.05])


def test_with_kl_coef_zero_the_loss_is_the_per_rollout_one_of_before(tiny_policy):
    lora_away_from_base(tiny_policy)
    rollouts = sample(tiny_policy, ["hello", "a longer prompt here"], group_size=2,
                      max_new_tokens=6)
    advantages = [1.0, 0.5, 0.0, 2.0]
    with torch.no_grad():
        logps = action_logprobs(tiny_policy, rollouts)
    n = sum(r.num_tokens for r in rollouts)
    naive = -sum(float((torch.exp(lp - torch.tensor(r.logprobs)) * a).sum())
                 for r, lp, a in zip(rollouts, logps, advantages, strict=True)) / n
    stats = policy_gradient_step(tiny_policy, sgd(tiny_policy), rollouts, advantages,
                                 kl_coef=0.0)
    assert stats["loss"] == pytest.approx(naive, abs=1e-6) and "kl/base" not in stats
    assert stats["tokens/train"] == n - rollouts[2].num_tokens  # zero advantage: skipped


def test_a_kl_penalty_changes_the_update_and_moves_only_lora_weights(tiny_policy):
    lora_away_from_base(tiny_policy)
    rollouts = sample(tiny_policy, ["hello"], group_size=3, max_new_tokens=6)
    start = snapshot(tiny_policy)
    policy_gradient_step(tiny_policy, sgd(tiny_policy), rollouts, [1.0, -1.0, 0.0])
    plain = snapshot(tiny_policy)
    restore(tiny_policy, start)
    stats = policy_gradient_step(tiny_policy, sgd(tiny_policy), rollouts, [1.0, -1.0, 0.0],
                                 kl_coef=1.0)
    penalized = snapshot(tiny_policy)
    moved = {n for n in start if not torch.equal(penalized[n], start[n])}
    assert moved and all("lora_" in n for n in moved)
    assert any(not torch.allclose(penalized[n], plain[n], atol=1e-6) for n in moved)
    assert stats["tokens/train"] == sum(r.num_tokens for r in rollouts)  # every token counts
    assert stats["kl/base"] != 0.0


def test_without_clipping_the_update_is_the_whole_gradient_and_its_norm_is_reported(
        tiny_policy):
    torch.manual_seed(0)
    add_lora(tiny_policy, rank=4)
    rollouts = sample(tiny_policy, ["hello"], group_size=2, max_new_tokens=6)
    start = snapshot(tiny_policy)

    def step_norm(max_grad_norm):
        restore(tiny_policy, start)
        # large advantages: a norm well above the old fixed clip at 1
        stats = policy_gradient_step(tiny_policy, sgd(tiny_policy), rollouts, [100.0, -100.0],
                                     max_grad_norm=max_grad_norm)
        after = snapshot(tiny_policy)
        return stats["grad_norm"], float(torch.linalg.vector_norm(
            torch.cat([(after[n] - start[n]).flatten() for n in start])))

    grad_norm, moved = step_norm(0.0)
    assert grad_norm > 2 and moved == pytest.approx(grad_norm, rel=1e-4)
    clipped_norm, clipped = step_norm(grad_norm / 10)
    assert clipped_norm == pytest.approx(grad_norm) and clipped == pytest.approx(grad_norm / 10,
                                                                                 rel=1e-3)


def test_adam_takes_the_configured_betas_and_eps(tiny_policy):
    add_lora(tiny_policy, rank=4)
    group = make_optimizer(tiny_policy, 1e-3, betas=(0.8, 0.9), eps=1e-6).param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (1e-3, (0.8, 0.9), 1e-6)
    assert make_optimizer(tiny_policy, 4e-5).param_groups[0]["betas"] == (0.9, 0.95)


def test_prompts_are_never_cut_from_the_left(tiny_policy):
    message = "first " + "word " * 3000
    ids = chat_prompt_ids(tiny_policy, message)
    assert len(ids) > 3000 and "first" in tiny_policy.tokenizer.decode(ids[:40])


def test_new_tokens_are_fitted_to_the_context_left_by_the_longest_prompt():
    assert fitted_new_tokens(100, 30, 64) == 34
    assert fitted_new_tokens(20, 30, 64) == 20
    assert fitted_new_tokens(100, 30, None) == 100
    with pytest.raises(ValueError, match="of 64 tokens does not fit the model's context of 64"):
        fitted_new_tokens(100, 64, 64)


def test_sampling_stops_at_the_models_context(tiny_policy):
    longest = max(len(chat_prompt_ids(tiny_policy, p)) for p in ("hi", "a longer prompt"))
    tiny_policy.model.config.max_position_embeddings = longest + 3
    torch.manual_seed(0)
    rollouts = sample(tiny_policy, ["hi", "a longer prompt"], group_size=2, max_new_tokens=50)
    assert max(r.num_tokens for r in rollouts) == 3
    tiny_policy.model.config.max_position_embeddings = longest - 1
    with pytest.raises(ValueError, match="does not fit the model's context"):
        sample(tiny_policy, ["hi", "a longer prompt"], group_size=1, max_new_tokens=50)


THINKING_TEMPLATE = ("{% for m in messages %}{{ m['content'] }}{% endfor %}"
                     "{% if enable_thinking is defined and enable_thinking %} THINK"
                     "{% else %} PLAIN{% endif %}")


@pytest.mark.parametrize("reasoning, ending", [("auto", "THINK"), ("on", "THINK"),
                                               ("off", "PLAIN")])
def test_reasoning_mode_switches_a_template_that_has_enable_thinking(tiny_policy, reasoning,
                                                                      ending):
    tiny_policy.tokenizer.chat_template = THINKING_TEMPLATE
    ids = chat_prompt_ids(tiny_policy, "solve it", reasoning)
    assert tiny_policy.tokenizer.decode(ids).endswith(ending)


def test_gpt_oss_style_templates_get_a_high_reasoning_effort():
    class Tokenizer:  # only the template text matters
        chat_template = "{{ reasoning_effort | default('medium') }}"

    assert reasoning_switch(Tokenizer(), "auto") == {"reasoning_effort": "high"}
    assert reasoning_switch(Tokenizer(), "off") == {"reasoning_effort": "low"}


def test_a_template_without_a_reasoning_switch_is_left_alone_but_refuses_on(tiny_policy):
    assert chat_prompt_ids(tiny_policy, "solve it", "auto") == \
        chat_prompt_ids(tiny_policy, "solve it", "off")
    with pytest.raises(ValueError, match="no reasoning switch"):
        chat_prompt_ids(tiny_policy, "solve it", "on")

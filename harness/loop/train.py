"""One policy-gradient step on the LoRA weights (importance-sampling loss, as in the paper).

loss = -(1/N) * sum over action tokens t of rollout i of exp(logp(t) - logp_sampler(t)) * A_i
with N the number of action tokens in the whole batch. The ratio is 1 in value at the first
step after sampling but carries the gradient of logp; it corrects for any drift between the
sampler and the learner (bf16 sampling, or several updates per batch).
Rollouts with zero advantage contribute nothing and are skipped; the sum is taken over
micro-batches so memory stays bounded. One optimizer step per batch; the gradient is clipped
only when `max_grad_norm` > 0 (the released code does not clip).
With `kl_coef` > 0 a KL penalty toward the base model is folded into per-token advantages
(`kl_penalized_advantages`) and A_i above becomes A_it.
"""

from __future__ import annotations

import torch

from harness.loop.logprobs import token_logprobs
from harness.loop.model import Policy, base_model, cache_keyword
from harness.loop.sampling import Rollout


def trainable_parameters(policy: Policy) -> list[torch.nn.Parameter]:
    return [p for p in policy.model.parameters() if p.requires_grad]


def make_optimizer(policy: Policy, learning_rate: float, betas: tuple[float, float] = (0.9, 0.95),
                   eps: float = 1e-8) -> torch.optim.Optimizer:
    """Adam on the LoRA weights (defaults: the released code's betas and eps)."""
    return torch.optim.Adam(trainable_parameters(policy), lr=learning_rate, betas=betas,
                            eps=eps)


def kl_penalized_advantages(advantages: list[float], sampler_logprobs: list[torch.Tensor],
                            base_logprobs: list[torch.Tensor], kl_coef: float
                            ) -> tuple[list[torch.Tensor], float]:
    """Per-token advantages with a KL penalty toward the base model folded in, as
    tinker-cookbook's `incorporate_kl_penalty`:

        d_it  = logp_sampler(t) - logp_base(t)     for action token t of rollout i
        avg   = mean of d_it over every action token of the batch
        A_it  = A_i + kl_coef * (avg - d_it)

    Tokens the sampler likes more than the base model does lose advantage, those it likes less
    gain; the mean shift is removed, so the penalty moves no advantage on average. Returns
    (A_it per rollout as 1-D tensors, avg: the batch's sampled KL(policy || base) estimate)."""
    diffs = [s - b for s, b in zip(sampler_logprobs, base_logprobs, strict=True)]
    n_tokens = sum(d.numel() for d in diffs)
    avg = float(sum(d.sum() for d in diffs) / n_tokens) if n_tokens else 0.0
    return [a + kl_coef * (avg - d) for a, d in zip(advantages, diffs, strict=True)], avg


@torch.no_grad()
def base_logprobs(policy: Policy, rollouts: list[Rollout], micro_batch: int
                  ) -> list[torch.Tensor]:
    """Log-probs of each rollout's action tokens under the base model (LoRA adapters off)."""
    out: list[torch.Tensor] = []
    with policy.model.disable_adapter():
        for start in range(0, len(rollouts), micro_batch):
            out += action_logprobs(policy, rollouts[start:start + micro_batch])
    return out


def right_padded(policy: Policy, rollouts: list[Rollout]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt + action ids of each rollout, right-padded into one batch, and its mask."""
    pad = policy.tokenizer.pad_token_id
    seqs = [r.prompt_ids + r.action_ids for r in rollouts]
    width = max(len(s) for s in seqs)
    input_BT = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=policy.device)
    mask_BT = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs],
                           device=policy.device)
    return input_BT, mask_BT


def action_logprobs(policy: Policy, rollouts: list[Rollout]) -> list[torch.Tensor]:
    """Current-policy log-probs of each rollout's action tokens (one 1-D tensor per rollout).

    Rollouts that share a prompt (a group) run it once: the prompt's keys and values are
    computed once, repeated over the group's actions, and the actions run on top (gradients
    flow through both). The vocabulary projection runs only at the action positions, in
    chunks (`harness.loop.logprobs`): B x T x V logits are never built.
    """
    out: list[torch.Tensor | None] = [None] * len(rollouts)
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for i, r in enumerate(rollouts):
        by_prompt.setdefault(tuple(r.prompt_ids), []).append(i)
    for members in by_prompt.values():
        logprobs = shared_prompt_logprobs(policy, [rollouts[i] for i in members])
        for i, logprobs_T in zip(members, logprobs, strict=True):
            out[i] = logprobs_T
    return out


def shared_prompt_logprobs(policy: Policy, rollouts: list[Rollout]) -> list[torch.Tensor]:
    """`action_logprobs` for rollouts with one prompt: the prompt once, then the actions."""
    base = base_model(policy.model)
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    prompt_1P = torch.tensor([rollouts[0].prompt_ids], device=policy.device)
    prompt = decoder(input_ids=prompt_1P, use_cache=True)
    cache_arg = cache_keyword(decoder.forward)
    cache = getattr(prompt, cache_arg)
    cache.batch_repeat_interleave(len(rollouts))
    n_prompt, width = prompt_1P.shape[1], max(r.num_tokens for r in rollouts)
    pad = policy.tokenizer.pad_token_id
    actions_GA = torch.tensor([r.action_ids + [pad] * (width - r.num_tokens) for r in rollouts],
                              device=policy.device)
    mask_GT = torch.tensor([[1] * (n_prompt + r.num_tokens) + [0] * (width - r.num_tokens)
                            for r in rollouts], device=policy.device)
    positions_GA = torch.arange(n_prompt, n_prompt + width, device=policy.device)
    hidden_GAD = decoder(input_ids=actions_GA, attention_mask=mask_GT, **{cache_arg: cache},
                         position_ids=positions_GA.expand(len(rollouts), -1)).last_hidden_state
    # the hidden state at position t predicts token t + 1: the prompt's last one predicts
    # each action's first token, the action's own ones the rest
    last_D = prompt.last_hidden_state[0, -1]
    hidden_ND = torch.cat([torch.cat([last_D[None], hidden_GAD[g, :r.num_tokens - 1]])
                           for g, r in enumerate(rollouts)])
    targets_N = torch.cat([actions_GA[g, :r.num_tokens] for g, r in enumerate(rollouts)])
    logprobs_N = token_logprobs(hidden_ND, head, targets_N)
    return list(logprobs_N.split([r.num_tokens for r in rollouts]))


def micro_batches(items: list, micro_batch: int) -> list[list]:
    """Consecutive chunks of at most `micro_batch` (rollout, advantage) pairs, a new chunk
    wherever the prompt changes, so that each chunk runs its prompt once."""
    chunks: list[list] = []
    for item in items:
        if not chunks or len(chunks[-1]) == micro_batch or \
                chunks[-1][0][0].prompt_ids != item[0].prompt_ids:
            chunks.append([])
        chunks[-1].append(item)
    return chunks


def policy_gradient_step(policy: Policy, optimizer: torch.optim.Optimizer,
                         rollouts: list[Rollout], advantages: list[float],
                         micro_batch: int = 4, max_grad_norm: float = 0.0,
                         kl_coef: float = 0.0) -> dict:
    """Accumulate the loss over micro-batches and take one optimizer step.

    `max_grad_norm` 0 = no clipping (grad_norm is still reported); `kl_coef` 0 = no KL term
    (nothing extra is computed, and the loss is that of per-rollout advantages)."""
    total_tokens = max(1, sum(r.num_tokens for r in rollouts))
    scored = [(r, a) for r, a in zip(rollouts, advantages, strict=True) if r.num_tokens > 0]
    stats = {}
    if kl_coef > 0:  # every action token gets an advantage of its own, none is zero
        rs = [r for r, _ in scored]
        per_token, stats["kl/base"] = kl_penalized_advantages(
            [a for _, a in scored], [torch.tensor(r.logprobs, device=policy.device) for r in rs],
            base_logprobs(policy, rs, micro_batch), kl_coef)
        active = list(zip(rs, per_token, strict=True))
    else:
        active = [(r, a) for r, a in scored if a != 0.0]
    # a group's rollouts (one prompt) side by side, similar lengths together: each
    # micro-batch runs its prompt once, with little padding (the sum does not depend on order)
    active.sort(key=lambda ra: (len(ra[0].prompt_ids), ra[0].prompt_ids, ra[0].num_tokens))
    policy.model.train()
    optimizer.zero_grad(set_to_none=True)
    loss_sum, kl_sum, kl_tokens = 0.0, 0.0, 0
    for chunk in micro_batches(active, micro_batch):
        new_logprobs = action_logprobs(policy, [r for r, _ in chunk])
        loss = torch.zeros((), device=policy.device)
        for (r, adv), logp_T in zip(chunk, new_logprobs, strict=True):
            old_T = torch.tensor(r.logprobs, device=policy.device)
            ratio_T = torch.exp(logp_T - old_T)
            loss = loss - (ratio_T * adv).sum() / total_tokens
            kl_sum += float((old_T - logp_T.detach()).sum())
            kl_tokens += r.num_tokens
        loss.backward()
        loss_sum += loss.item()
    grad_norm = 0.0
    if active:
        params = trainable_parameters(policy)
        if max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
        else:
            grad_norm = float(torch.nn.utils.get_total_norm(
                [p.grad for p in params if p.grad is not None]))
        optimizer.step()
    policy.model.eval()
    return {"loss": loss_sum, "kl": kl_sum / max(1, kl_tokens), "grad_norm": grad_norm,
            "tokens/train": sum(r.num_tokens for r, _ in active), **stats}

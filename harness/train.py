"""One policy-gradient step on the LoRA weights (importance-sampling loss, as in the paper).

loss = -(1/N) * sum over action tokens t of rollout i of exp(logp(t) - logp_sampler(t)) * A_i
with N the number of action tokens in the whole batch. The ratio is 1 in value at the first
step after sampling but carries the gradient of logp; it corrects for any drift between the
sampler and the learner (bf16 sampling, or several updates per batch).
Rollouts with zero advantage contribute nothing and are skipped; the sum is taken over
micro-batches so memory stays bounded.
"""

from __future__ import annotations

import torch

from harness.logprobs import token_logprobs
from harness.model import Policy
from harness.sampling import Rollout


def trainable_parameters(policy: Policy) -> list[torch.nn.Parameter]:
    return [p for p in policy.model.parameters() if p.requires_grad]


def make_optimizer(policy: Policy, learning_rate: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(trainable_parameters(policy), lr=learning_rate, betas=(0.9, 0.95),
                            eps=1e-8)


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

    The decoder runs over prompt + action, but the vocabulary projection only at the action
    positions, in chunks (`harness.logprobs`): B x T x V logits are never built.
    """
    base = policy.model.get_base_model() if hasattr(policy.model, "get_base_model") \
        else policy.model
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    input_BT, mask_BT = right_padded(policy, rollouts)
    hidden_BTD = decoder(input_ids=input_BT, attention_mask=mask_BT).last_hidden_state
    # the hidden state at position t predicts token t + 1: gather every action position
    starts = [len(r.prompt_ids) - 1 for r in rollouts]
    hidden_ND = torch.cat([hidden_BTD[b, s:s + r.num_tokens]
                           for b, (s, r) in enumerate(zip(starts, rollouts, strict=True))])
    targets_N = torch.cat([input_BT[b, s + 1:s + 1 + r.num_tokens]
                           for b, (s, r) in enumerate(zip(starts, rollouts, strict=True))])
    logprobs_N = token_logprobs(hidden_ND, head, targets_N)
    return list(logprobs_N.split([r.num_tokens for r in rollouts]))


def policy_gradient_step(policy: Policy, optimizer: torch.optim.Optimizer,
                         rollouts: list[Rollout], advantages: list[float],
                         micro_batch: int = 4, max_grad_norm: float = 1.0) -> dict:
    """Accumulate the loss over micro-batches and take one optimizer step."""
    total_tokens = max(1, sum(r.num_tokens for r in rollouts))
    active = [(r, a) for r, a in zip(rollouts, advantages, strict=True)
              if a != 0.0 and r.num_tokens > 0]
    # similar lengths share a micro-batch: less padding (the sum does not depend on order)
    active.sort(key=lambda ra: len(ra[0].prompt_ids) + ra[0].num_tokens)
    policy.model.train()
    optimizer.zero_grad(set_to_none=True)
    loss_sum, kl_sum, kl_tokens = 0.0, 0.0, 0
    for start in range(0, len(active), micro_batch):
        chunk = active[start:start + micro_batch]
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
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable_parameters(policy),
                                                         max_grad_norm))
        optimizer.step()
    policy.model.eval()
    return {"loss": loss_sum, "kl": kl_sum / max(1, kl_tokens), "grad_norm": grad_norm,
            "tokens/train": sum(r.num_tokens for r, _ in active)}

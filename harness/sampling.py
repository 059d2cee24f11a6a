"""Sampling actions from the policy, with the per-token log-probs the loss needs.

We use transformers' `generate` with pure temperature sampling (no top-k, no top-p), so the
processed scores it returns are exactly logits / T and log_softmax of them is the sampling
distribution: the importance ratio in the loss starts at 1 for the sampler's own tokens.
Prompts are chat-formatted and left-padded; each prompt is sampled `group_size` times.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.model import Policy


@dataclass
class Rollout:
    group: int               # index of the start state within the step
    prompt_ids: list[int]
    action_ids: list[int]    # generated tokens up to and including EOS
    logprobs: list[float]    # sampler's log-prob of each action token
    text: str                # decoded action (special tokens stripped)
    finished: bool           # ended with EOS (False: cut at max_new_tokens)

    @property
    def num_tokens(self) -> int:
        return len(self.action_ids)


def chat_prompt_ids(policy: Policy, user_message: str, max_tokens: int) -> list[int]:
    """Token ids of a one-turn chat asking `user_message`, cut from the left to `max_tokens`."""
    tok = policy.tokenizer
    messages = [{"role": "user", "content": user_message}]
    if getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if hasattr(ids, "keys"):  # some versions return a BatchEncoding
            ids = ids["input_ids"]
    else:
        ids = tok(user_message)["input_ids"]
    return list(ids)[-max_tokens:]


@torch.no_grad()
def sample(policy: Policy, prompts: list[str], group_size: int, max_new_tokens: int,
           temperature: float = 1.0, prompt_max_tokens: int = 2048, answer_prefix: str = "",
           batch_size: int = 64) -> list[Rollout]:
    """Sample `group_size` actions for each prompt; rollouts come grouped, prompt by prompt.

    `answer_prefix` starts the assistant's answer (e.g. "[" for a list of numbers): it is part
    of the prompt tokens, not of the action, and is prepended to each rollout's text.
    """
    policy.model.eval()
    prefix_ids = policy.tokenizer(answer_prefix, add_special_tokens=False)["input_ids"] \
        if answer_prefix else []
    prompt_ids = [chat_prompt_ids(policy, p, prompt_max_tokens) + prefix_ids for p in prompts]
    jobs = [(g, ids) for g, ids in enumerate(prompt_ids) for _ in range(group_size)]
    rollouts: list[Rollout] = []
    for start in range(0, len(jobs), batch_size):
        rollouts += _sample_batch(policy, jobs[start:start + batch_size], max_new_tokens,
                                  temperature)
    for r in rollouts:
        r.text = answer_prefix + r.text
    return rollouts


def _sample_batch(policy: Policy, jobs: list[tuple[int, list[int]]], max_new_tokens: int,
                  temperature: float) -> list[Rollout]:
    tok = policy.tokenizer
    width = max(len(ids) for _, ids in jobs)
    pad = tok.pad_token_id
    input_BT = torch.tensor([[pad] * (width - len(ids)) + ids for _, ids in jobs],
                            device=policy.device)
    mask_BT = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, ids in jobs],
                           device=policy.device)
    out = policy.model.generate(
        input_ids=input_BT, attention_mask=mask_BT, do_sample=True, temperature=temperature,
        top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, output_scores=True,
        return_dict_in_generate=True, pad_token_id=pad, eos_token_id=tok.eos_token_id)
    new_BT = out.sequences[:, width:]
    scores_BTV = torch.stack(out.scores, dim=1).float()
    logprobs_BT = torch.log_softmax(scores_BTV, dim=-1).gather(
        -1, new_BT.unsqueeze(-1)).squeeze(-1)
    eos = tok.eos_token_id
    rollouts = []
    for b, (group, ids) in enumerate(jobs):
        tokens = new_BT[b].tolist()
        finished = eos in tokens
        length = tokens.index(eos) + 1 if finished else len(tokens)
        action = tokens[:length]
        rollouts.append(Rollout(
            group=group, prompt_ids=ids, action_ids=action,
            logprobs=logprobs_BT[b, :length].tolist(),
            text=tok.decode(action, skip_special_tokens=True), finished=finished))
    return rollouts

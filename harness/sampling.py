"""Sampling actions from the policy, with the per-token log-probs the loss needs.

Two backends produce the same tensors (tokens and their log-probs per left-padded prompt) and
the rollouts are built from them in one place (`_rollouts`):
- `generate` (reference): transformers' `generate` with pure temperature sampling (no top-k,
  no top-p), so the processed scores it returns are exactly logits / T and log_softmax of them
  is the sampling distribution: the importance ratio in the loss starts at 1 for the sampler's
  own tokens.
- `fast` (`harness.fast_sampler`): static KV cache, LoRA merged, decode step in a CUDA graph;
  the same distribution, several times the tokens/s on a GPU.
`fast_sampler="auto"` (the config key of the same name) picks `fast` on CUDA and `generate`
on CPU; "on" / "off" force one. Prompts are chat-formatted (with the template's reasoning mode
on or off, `reasoning_switch`) and left-padded; each prompt is sampled `group_size` times.
Prompts are never cut here; a batch's new tokens are capped so that its longest prompt plus
the action fits the model's context (`fitted_new_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.config import FAST_SAMPLER, REASONING
from harness.model import Policy

SANE_CONTEXT = 10_000_000  # transformers' "no limit" model_max_length is about 1e30


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


def reasoning_switch(tokenizer, reasoning: str) -> dict:
    """The `apply_chat_template` keywords that turn the template's reasoning mode on or off.

    Qwen3-style templates read `enable_thinking`; gpt-oss's read `reasoning_effort`, which has
    no off ("low" is its least; "high" is on). auto = on where the template has a switch; a
    template without one (SmolLM2) gets nothing, and asking it for "on" is an error."""
    if reasoning not in REASONING:
        raise ValueError(f"reasoning must be one of {', '.join(REASONING)}; got {reasoning!r}")
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # several named templates
        template = " ".join(template.values())
    on = reasoning != "off"
    if "enable_thinking" in template:
        return {"enable_thinking": on}
    if "reasoning_effort" in template:
        return {"reasoning_effort": "high" if on else "low"}
    if reasoning == "on":
        raise ValueError("reasoning=on, but the model's chat template has no reasoning switch "
                         "(enable_thinking or reasoning_effort)")
    return {}


def chat_prompt_ids(policy: Policy, user_message: str, reasoning: str = "auto") -> list[int]:
    """Token ids of a one-turn chat asking `user_message`, whole (never cut)."""
    tok = policy.tokenizer
    switch = reasoning_switch(tok, reasoning)
    messages = [{"role": "user", "content": user_message}]
    if getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                      **switch)
        if hasattr(ids, "keys"):  # some versions return a BatchEncoding
            ids = ids["input_ids"]
    else:
        ids = tok(user_message)["input_ids"]
    return list(ids)


def context_length(policy: Policy) -> int | None:
    """Tokens the model attends to: its config's max_position_embeddings, else the tokenizer's
    model_max_length when that is a real limit; None when neither says."""
    n = getattr(policy.model.config, "max_position_embeddings", None)
    if not n:
        n = getattr(policy.tokenizer, "model_max_length", None)
        if not n or n >= SANE_CONTEXT:
            return None
    return int(n)


def fitted_new_tokens(max_new_tokens: int, longest_prompt: int, context: int | None) -> int:
    """min(max_new_tokens, context - longest prompt): the batch's sequences fit the context.
    Raises ValueError when the prompt alone leaves no room for one new token."""
    if context is None:
        return max_new_tokens
    if longest_prompt >= context:
        raise ValueError(f"a prompt of {longest_prompt} tokens does not fit the model's context "
                         f"of {context} tokens; shorten it before sampling")
    return min(max_new_tokens, context - longest_prompt)


def use_fast_sampler(setting: str, device: torch.device) -> bool:
    """The `fast_sampler` config value -> whether `harness.fast_sampler` generates."""
    if setting not in FAST_SAMPLER:
        raise ValueError(f"fast_sampler must be one of {', '.join(FAST_SAMPLER)}; got {setting!r}")
    return setting == "on" or (setting == "auto" and torch.device(device).type == "cuda")


@torch.no_grad()
def sample(policy: Policy, prompts: list[str], group_size: int, max_new_tokens: int,
           temperature: float = 1.0, answer_prefix: str = "", batch_size: int = 64,
           fast_sampler: str = "auto", reasoning: str = "auto") -> list[Rollout]:
    """Sample `group_size` actions for each prompt; rollouts come grouped, prompt by prompt.

    `answer_prefix` starts the assistant's answer (e.g. "[" for a list of numbers): it is part
    of the prompt tokens, not of the action, and is prepended to each rollout's text. Each
    batch generates at most `max_new_tokens`, fewer where its longest prompt needs the room
    (`fitted_new_tokens`); a prompt longer than the context raises ValueError up front.
    """
    policy.model.eval()
    fast = use_fast_sampler(fast_sampler, policy.device)
    prefix_ids = policy.tokenizer(answer_prefix, add_special_tokens=False)["input_ids"] \
        if answer_prefix else []
    prompt_ids = [chat_prompt_ids(policy, p, reasoning) + prefix_ids for p in prompts]
    context = context_length(policy)
    fitted_new_tokens(max_new_tokens, max(map(len, prompt_ids)), context)  # fail before any work
    jobs = [(g, ids) for g, ids in enumerate(prompt_ids) for _ in range(group_size)]
    rollouts: list[Rollout] = []
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        input_BP, mask_BP = left_pad(policy, [ids for _, ids in batch])
        new_tokens = fitted_new_tokens(max_new_tokens, input_BP.shape[1], context)
        tokens_BN, logprobs_BN = generate_tokens(policy, input_BP, mask_BP, new_tokens,
                                                 temperature, fast)
        rollouts += _rollouts(policy, batch, tokens_BN, logprobs_BN)
    for r in rollouts:
        r.text = answer_prefix + r.text
    return rollouts


def left_pad(policy: Policy, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_BP, mask_BP): prompts right-aligned, padding on the left (batched generation
    appends on the right)."""
    width = max(len(ids) for ids in prompts)
    pad = policy.tokenizer.pad_token_id
    input_BP = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts],
                            device=policy.device)
    mask_BP = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts],
                           device=policy.device)
    return input_BP, mask_BP


def generate_tokens(policy: Policy, input_BP: torch.Tensor, mask_BP: torch.Tensor,
                    max_new_tokens: int, temperature: float, fast: bool
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens_BN, logprobs_BN) from either backend; rows may continue past EOS (ignored)."""
    tok = policy.tokenizer
    if fast:
        from harness import fast_sampler

        return fast_sampler.generate(policy.model, input_BP, mask_BP, max_new_tokens,
                                     temperature, tok.eos_token_id, tok.pad_token_id)
    out = policy.model.generate(
        input_ids=input_BP, attention_mask=mask_BP, do_sample=True, temperature=temperature,
        top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, output_scores=True,
        return_dict_in_generate=True, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id)
    tokens_BN = out.sequences[:, input_BP.shape[1]:]
    scores_BNV = torch.stack(out.scores, dim=1).float()
    logprobs_BN = torch.log_softmax(scores_BNV, dim=-1).gather(
        -1, tokens_BN.unsqueeze(-1)).squeeze(-1)
    return tokens_BN, logprobs_BN


def _rollouts(policy: Policy, jobs: list[tuple[int, list[int]]], tokens_BN: torch.Tensor,
              logprobs_BN: torch.Tensor) -> list[Rollout]:
    tok = policy.tokenizer
    eos = tok.eos_token_id
    tokens_BN, logprobs_BN = tokens_BN.cpu(), logprobs_BN.float().cpu()
    rollouts = []
    for b, (group, ids) in enumerate(jobs):
        tokens = tokens_BN[b].tolist()
        finished = eos in tokens
        length = tokens.index(eos) + 1 if finished else len(tokens)
        action = tokens[:length]
        rollouts.append(Rollout(
            group=group, prompt_ids=ids, action_ids=action,
            logprobs=logprobs_BN[b, :length].tolist(),
            text=tok.decode(action, skip_special_tokens=True), finished=finished))
    return rollouts

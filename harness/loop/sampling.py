"""Sampling actions from the policy, with the per-token log-probs the loss needs.

Three backends produce the same tensors (tokens and their log-probs, one row per rollout, a
group's rows together) and the rollouts are built from them in one place (`_rollouts`):
- `generate` (reference, `fast_sampler=off`): transformers' `generate` with pure temperature
  sampling (no top-k, no top-p), so the processed scores it returns are exactly logits / T and
  log_softmax of them is the sampling distribution: the importance ratio in the loss starts
  at 1 for the sampler's own tokens.
- `shared` (`harness.loop.shared_sampler`, the CPU default): each prompt prefilled once for its
  group, finished rows leave the batch, LoRA merged.
- `fast` (`harness.loop.fast_sampler`, the CUDA default): static KV cache, LoRA merged, decode step
  in a CUDA graph.
All three draw from the same distribution. Prompts are chat-formatted (with the template's
reasoning mode on or off, `reasoning_switch`); each prompt is sampled `group_size` times.
Prompts are never cut here; a batch's new tokens are capped so that its longest prompt plus
the action fits the model's context (`fitted_new_tokens`). With `stop_at_answer`, every
backend feeds an `answers.AnswerWatch` and each row ends at its answer, then EOS (issue 19).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.base.config import FAST_SAMPLER, REASONING, SAMPLE_DTYPE, ConfigError, check_choice
from harness.env.answers import AnswerEnd, AnswerWatch
from harness.loop import fast_sampler, shared_sampler
from harness.loop.model import Policy

SANE_CONTEXT = 10_000_000  # transformers' "no limit" model_max_length is about 1e30


@dataclass
class Rollout:
    group: int               # index of the start state within the step
    prompt_ids: list[int]
    action_ids: list[int]    # generated tokens up to and including EOS
    logprobs: list[float]    # sampler's log-prob of each action token
    text: str                # decoded action (special tokens stripped)
    finished: bool           # ended with EOS (False: cut at max_new_tokens)
    complete: bool = False   # the answer is complete (`answers.AnswerEnd`)

    @property
    def num_tokens(self) -> int:
        return len(self.action_ids)


def reasoning_switch(tokenizer, reasoning: str) -> dict:
    """The `apply_chat_template` keywords that turn the template's reasoning mode on or off.

    Qwen3-style templates read `enable_thinking`; gpt-oss's read `reasoning_effort`, which has
    no off ("low" is its least; "high" is on). auto = on where the template has a switch; a
    template without one (SmolLM2) gets nothing, and asking it for "on" is an error."""
    check_choice("reasoning", reasoning, REASONING)
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # several named templates
        template = " ".join(template.values())
    on = reasoning != "off"
    if "enable_thinking" in template:
        return {"enable_thinking": on}
    if "reasoning_effort" in template:
        return {"reasoning_effort": "high" if on else "low"}
    if reasoning == "on":
        raise ConfigError("reasoning=on, but the model's chat template has no reasoning switch "
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
    Raises ConfigError when the prompt alone leaves no room for one new token."""
    if context is None:
        return max_new_tokens
    if longest_prompt >= context:
        raise ConfigError(f"a prompt of {longest_prompt} tokens does not fit the model's context "
                          f"of {context} tokens; shorten it before sampling")
    return min(max_new_tokens, context - longest_prompt)


def backend(setting: str, device: torch.device) -> str:
    """The `fast_sampler` config value -> the backend that samples: "fast" (static cache,
    CUDA graph), "shared" (prompt prefilled once per group, finished rows leave the batch:
    the CPU default) or "generate" (transformers, the reference)."""
    check_choice("fast_sampler", setting, FAST_SAMPLER)
    if setting == "auto":
        return "fast" if torch.device(device).type == "cuda" else "shared"
    return {"on": "fast", "off": "generate"}.get(setting, setting)


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX)."""
    capabilities = getattr(torch.cpu, "get_capabilities", dict)()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def linear_dtype(setting: str, device: torch.device | str, kind: str) -> torch.dtype | None:
    """The `sample_dtype` config value -> the dtype the `kind` backend's linear layers multiply
    in (None: the model's own). Only the shared sampler (the CPU default) casts."""
    check_choice("sample_dtype", setting, SAMPLE_DTYPE)
    if kind != "shared" or setting == "model":
        return None
    if setting == "auto" and not (torch.device(device).type == "cpu" and native_bf16()):
        return None
    return torch.bfloat16


def describe(fast_sampler_setting: str, sample_dtype: str, device: str) -> dict:
    """How sampling runs here (config.json's `sampling`): the backend and its linears' dtype."""
    kind = backend(fast_sampler_setting, device)
    dtype = linear_dtype(sample_dtype, device, kind)
    return {"backend": kind, "linear_dtype": str(dtype).removeprefix("torch.") if dtype
            else "model"}


@torch.no_grad()
def sample(policy: Policy, prompts: list[str], group_size: int, max_new_tokens: int,
           temperature: float = 1.0, answer_prefix: str = "", batch_size: int = 64,
           fast_sampler: str = "auto", reasoning: str = "auto",
           answer_end: AnswerEnd | None = None, stop_at_answer: bool = False,
           sample_dtype: str = "auto") -> list[Rollout]:
    """Sample `group_size` actions for each prompt; rollouts come grouped, prompt by prompt.

    `answer_prefix` starts the assistant's answer (e.g. "[" for a list of numbers): it is part
    of the prompt tokens, not of the action, and is prepended to each rollout's text. Each
    batch (whole groups, about `batch_size` rollouts) generates at most `max_new_tokens`,
    fewer where its longest prompt needs the room (`fitted_new_tokens`); a prompt longer than
    the context raises ValueError up front. `answer_end` says where an answer is complete
    (`Rollout.complete`); with `stop_at_answer` each row stops there and ends with EOS.
    `sample_dtype` (`linear_dtype`) may make the shared sampler multiply in bf16.
    """
    policy.model.eval()
    kind = backend(fast_sampler, policy.device)
    dtype = linear_dtype(sample_dtype, policy.device, kind)
    prefix_ids = policy.tokenizer(answer_prefix, add_special_tokens=False)["input_ids"] \
        if answer_prefix else []
    prompt_ids = [chat_prompt_ids(policy, p, reasoning) + prefix_ids for p in prompts]
    context = context_length(policy)
    fitted_new_tokens(max_new_tokens, max(map(len, prompt_ids)), context)  # fail before any work
    per_batch = max(1, batch_size // group_size)  # prompts per batch
    rollouts: list[Rollout] = []
    for start in range(0, len(prompt_ids), per_batch):
        chunk = prompt_ids[start:start + per_batch]
        new_tokens = fitted_new_tokens(max_new_tokens, max(map(len, chunk)), context)
        watch = AnswerWatch(answer_end if stop_at_answer else None, _piece(policy.tokenizer),
                            answer_prefix, len(chunk) * group_size, policy.tokenizer.eos_token_id)
        tokens_BN, logprobs_BN = generate_tokens(policy, chunk, group_size, new_tokens,
                                                 temperature, kind, watch, dtype)
        jobs = [(start + g, ids) for g, ids in enumerate(chunk) for _ in range(group_size)]
        rollouts += _rollouts(policy, jobs, tokens_BN, logprobs_BN)
    for r in rollouts:
        r.text = answer_prefix + r.text
        r.complete = answer_end is not None and answer_end.find(r.text) is not None
    return rollouts


def _piece(tokenizer):
    """Token id -> its text (special tokens as nothing), for the answer watch."""
    return lambda token: tokenizer.decode([token], skip_special_tokens=True)


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


def generate_tokens(policy: Policy, prompts: list[list[int]], group_size: int,
                    max_new_tokens: int, temperature: float, kind: str, watch: AnswerWatch,
                    dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens_BN, logprobs_BN) for each prompt `group_size` times, from the `kind` backend
    (the shared one's linears multiplying in `dtype`); rows may continue past EOS (ignored)."""
    tok = policy.tokenizer
    eos, pad = tok.eos_token_id, tok.pad_token_id
    if kind == "shared":
        return shared_sampler.generate(policy.model, *left_pad(policy, prompts), group_size,
                                       max_new_tokens, temperature, eos, pad, watch,
                                       dtype)[:2]
    input_BP, mask_BP = left_pad(policy, [ids for ids in prompts for _ in range(group_size)])
    if kind == "fast":
        return fast_sampler.generate(policy.model, input_BP, mask_BP, max_new_tokens,
                                     temperature, eos, pad, watch=watch)[:2]
    out = policy.model.generate(
        input_ids=input_BP, attention_mask=mask_BP, do_sample=True, temperature=temperature,
        top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, output_scores=True,
        return_dict_in_generate=True, pad_token_id=pad, eos_token_id=eos,
        stopping_criteria=[_WatchStop(watch, input_BP.shape[1])])
    tokens_BN = out.sequences[:, input_BP.shape[1]:].cpu()
    logp_BNV = torch.log_softmax(torch.stack(out.scores, dim=1).float(), dim=-1).cpu()
    logprobs_BN = logp_BNV.gather(-1, tokens_BN.unsqueeze(-1)).squeeze(-1)
    watch.cut(tokens_BN, logprobs_BN, logp_BNV[:, :, eos], pad)
    return tokens_BN, logprobs_BN


class _WatchStop:
    """transformers stopping criterion: feeds the watch each new token, stops its rows."""

    def __init__(self, watch: AnswerWatch, prompt_width: int):
        self.watch, self.width = watch, prompt_width

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        t = input_ids.shape[1] - self.width - 1
        rows = list(range(input_ids.shape[0]))
        self.watch.feed(t, rows, input_ids[:, -1].tolist())
        return torch.tensor([self.watch.stopped(b, t) for b in rows], device=input_ids.device)


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

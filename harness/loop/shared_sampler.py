"""Sampling on CPU: each prompt prefilled once for its group, finished rows leave the batch.

`generate(model, ids_PW, mask_PW, group_size, ...)` returns what the other backends return
(tokens, their log-probs, and the log-prob of EOS at every position, one row per rollout, a
group's rows together) for each of the P left-padded prompts repeated `group_size` times.
Where a CPU step's time went before (issue 19, SmolLM2-135M, the Erdős prompt of ~950
tokens, 2 cores):
- every rollout of a group prefilled the same prompt again: 12 prefills of 950 tokens, about
  half of the sampling time. Here the distinct prompts run once, left-padded into one batch
  (only the last position's logits are computed), and their keys and values are repeated for
  the group (`DynamicCache.batch_repeat_interleave`);
- rows that had finished kept decoding until the longest one ended. Here a row leaves the
  batch (`batch_select_indices`) as soon as it needs no more tokens: after its EOS, or one
  step after its answer completed (`AnswerWatch`), that step giving the log-prob of the end
  token the watch appends (down to 4 rows, then 1: see `_kept`);
- full-vocabulary scores were kept for every step; here only the sampled token's log-prob
  and EOS's are;
- LoRA stayed unmerged (three GEMMs per projection); here it is merged for the batch
  (`fast_sampler.merged_lora`, restored bit-exactly);
- the linear layers streamed their fp32 weights every decode step: 45 ms of a ~105 ms step
  at batch 8, the LM head 25 of them. With `dtype=torch.bfloat16` (`sample_dtype`, on by
  default where the CPU multiplies bf16 natively) they multiply in bf16 (`linears_in`): 20 ms,
  the LM head 8.
Sampling draws as the other backends do (log_softmax(logits / T) in fp32, Gumbel-max from
torch's global generator, `fast_sampler.pick`); in fp32 it is their distribution exactly, in
bf16 a slightly different one, whose log-probs are the ones recorded, so the importance ratio
of training sees the drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer

from harness.env.answers import AnswerWatch
from harness.loop.fast_sampler import merged_lora, pick
from harness.loop.model import base_model, cache_keyword

SMALLEST_BATCH = 4  # decoding rows kept while more than one lives (see `_kept`)


class _PreallocatedLayer(DynamicLayer):
    """A DynamicCache layer that writes each new token into room allocated once, instead of
    concatenating the whole cache again every step (that copy was 44% of a CPU decode step
    at a 950-token prompt). `keys`/`values` are views of the first `length` slots, so
    everything DynamicLayer does (masks, batch_select_indices) still applies."""

    def __init__(self, layer: DynamicLayer, room: int):
        super().__init__()
        self.device, self.is_initialized = layer.keys.device, True
        self._store = [self._grown(t, room) for t in (layer.keys, layer.values)]
        self.keys, self.values = layer.keys, layer.values

    @staticmethod
    def _grown(t: torch.Tensor, room: int) -> torch.Tensor:
        store = t.new_empty(*t.shape[:2], t.shape[2] + room, t.shape[3])
        store[:, :, :t.shape[2]] = t
        return store

    def update(self, key_states, value_states, *args, **kwargs):
        start, new = self.keys.shape[2], key_states.shape[2]
        for store, states in zip(self._store, (key_states, value_states), strict=True):
            store[:, :, start:start + new] = states
        self.keys, self.values = (store[:, :, :start + new] for store in self._store)
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        length = self.keys.shape[2]
        self._store = [store[indices] for store in self._store]
        self.keys, self.values = (store[:, :, :length] for store in self._store)


@contextmanager
def linears_in(model: torch.nn.Module, dtype: torch.dtype | None) -> Iterator[None]:
    """Every `nn.Linear` of `model` multiplies in `dtype`: its weight cast once on entry, its
    input at each call, its output cast back to the input's dtype. Norms, attention, the KV
    cache and the residual stream keep theirs. The module's own weights are not touched.
    None: the model as it is. Enter it after merging LoRA (the cast copies what is there)."""
    if dtype is None:
        yield
        return
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    for m in linears:
        bias = None if m.bias is None else m.bias.detach().to(dtype)
        m.forward = _cast_linear(m.weight.detach().to(dtype), bias)  # shadows the class's
    try:
        yield
    finally:
        for m in linears:
            del m.forward


def _cast_linear(weight: torch.Tensor, bias: torch.Tensor | None):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(weight.dtype), weight, bias).to(x.dtype)
    return forward


def _kept(live_A: torch.Tensor) -> list[int]:
    """The decoding rows to keep: the live ones, plus finished ones as ballast up to
    SMALLEST_BATCH while more than one row lives (CPU BLAS takes a slower path at 2-3 rows
    than at 4: the model's linears measured 77-94 ms at 2-3 rows, 57-63 ms at 4-8, 45 at 1)."""
    live = live_A.nonzero()[:, 0].tolist()
    if 1 < len(live) < SMALLEST_BATCH <= len(live_A):
        ballast = (~live_A).nonzero()[:, 0].tolist()[:SMALLEST_BATCH - len(live)]
        return sorted(live + ballast)
    return live


@torch.no_grad()
def generate(model: torch.nn.Module, ids_PW: torch.Tensor, mask_PW: torch.Tensor,
             group_size: int, max_new_tokens: int, temperature: float, eos_id: int, pad_id: int,
             watch: AnswerWatch, dtype: torch.dtype | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens_BN, logprobs_BN, eos_logprobs_BN) for each of the left-padded distinct prompts
    `ids_PW` repeated `group_size` times; the linear layers multiply in `dtype` (`linears_in`).

    A row's tokens after it stopped are `pad_id` with log-prob 0 (the caller cuts at EOS)."""
    device = ids_PW.device
    rows = ids_PW.shape[0] * group_size
    tokens_BN = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long)
    logprobs_BN = torch.zeros(rows, max_new_tokens)
    eos_BN = torch.zeros(rows, max_new_tokens)
    with merged_lora(model), linears_in(model, dtype):
        base = base_model(model)
        out = base(input_ids=ids_PW, attention_mask=mask_PW, use_cache=True, logits_to_keep=1,
                   position_ids=(mask_PW.cumsum(-1) - 1).clamp(min=0))
        cache_arg = cache_keyword(base.forward)
        cache = getattr(out, cache_arg)
        cache.batch_repeat_interleave(group_size)
        cache.layers = [_PreallocatedLayer(layer, max_new_tokens) for layer in cache.layers]
        logits_AV = out.logits[:, -1].repeat_interleave(group_size, dim=0)
        mask_AL = mask_PW.repeat_interleave(group_size, dim=0)
        position_A1 = mask_AL.sum(-1, keepdim=True)
        rows_A = torch.arange(rows)  # the batch row each decoding row samples for
        live_A = torch.ones(rows, dtype=torch.bool)  # False: finished, kept only as ballast
        for t in range(max_new_tokens):
            token_A, logp_A, logp_eos_A = pick(logits_AV, temperature, False, eos_id)
            live = rows_A[live_A]
            tokens_BN[live, t] = token_A.cpu()[live_A]
            logprobs_BN[live, t], eos_BN[live, t] = logp_A.cpu()[live_A], logp_eos_A.cpu()[live_A]
            watch.feed(t, live.tolist(), tokens_BN[live, t].tolist())
            for i in live_A.nonzero()[:, 0].tolist():
                b = int(rows_A[i])
                live_A[i] = tokens_BN[b, t] != eos_id and not watch.stopped(b, t)
            if not live_A.any() or t + 1 == max_new_tokens:
                break
            keep = _kept(live_A)
            if len(keep) < len(rows_A):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                rows_A, live_A, token_A = rows_A[keep], live_A[keep], token_A[index]
                mask_AL, position_A1 = mask_AL[index], position_A1[index]
            mask_AL = torch.cat([mask_AL, mask_AL.new_ones(len(rows_A), 1)], dim=1)
            out = base(input_ids=token_A[:, None], attention_mask=mask_AL,
                       position_ids=position_A1, use_cache=True, **{cache_arg: cache})
            position_A1 = position_A1 + 1
            logits_AV = out.logits[:, -1]
    watch.cut(tokens_BN, logprobs_BN, eos_BN, pad_id)
    return tokens_BN, logprobs_BN, eos_BN

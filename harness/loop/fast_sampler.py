"""Fast rollout generation: a static KV cache and, on CUDA, the decode step in a CUDA graph.

`generate(model, input_BP, mask_BP, ...)` returns the same tensors as the reference path in
`harness.loop.sampling` (tokens and their sampling log-probs, one row per left-padded prompt), so
`sampling.sample` builds the rollouts the same way whichever backend ran.

Why: a decode step of a 135M model at batch <= 256 is kernel-launch bound. transformers'
`generate` launches a few thousand small kernels per token from Python; replaying the step as
one captured CUDA graph removes that overhead. What runs:
- prefill: the whole left-padded batch in one forward, writing keys/values into a
  `transformers.StaticCache` of length prompt + max_new_tokens (allocated once per batch);
- decode: `step()` feeds one token per row through the decoder with explicit position ids
  and a 4-D additive mask, all read from static buffers that the step advances in place
  (cache write position, positions, mask), so every replay of the same captured graph is the
  next token. On CUDA the first `WARMUP_STEPS` steps run eagerly on a side stream (they are
  real steps, not thrown away), then the step is captured once and replayed; on CPU the
  same step runs eagerly (the simple path, used by the tests).
- sampling (outside the graph, a handful of kernels): fp32 log_softmax(logits / T) and the
  Gumbel-max trick (argmax of logp - log E, E ~ Exp(1)) drawn from torch's global generator,
  so runs are seeded by `torch.manual_seed`; `greedy=True` takes the argmax instead (its
  log-probs are then those of T = 1). Finished rows keep running (static shapes) but emit
  padding with log-prob 0; the loop stops when every row has emitted EOS or completed its
  answer (an `answers.AnswerWatch`, fed the new tokens at each check), checked every step on
  CPU and every `CHECK_EVERY` steps on CUDA (each check is a host sync). The log-prob of EOS
  is kept at every position, so a row whose answer completed inside a block still gets its
  end token right after the answer (`AnswerWatch.cut`).

LoRA: adapters are merged into the base weights for sampling (`merged_lora`), not applied in
the graph. Merged, each projection is one GEMM instead of three plus an add (about 3x fewer
kernels in the linear layers, and less work). peft merges in place (`weight.data += delta`),
so the graph captured after merging reads the merged weights through the same pointers, and
the optimizer's parameters are the same tensors throughout. Unmerging by subtraction would not
give back the same bits (W + d - d != W in bf16, and the error would accumulate over steps),
so the base weights are copied before merging and copied back afterwards: bit-identical, still
in place (the cost: one copy of the adapted weights while sampling, ~0.2 GB for SmolLM2-135M
in bf16). The merged model's log-probs differ from the learner's unmerged ones only by
rounding (bf16: ~1e-2), which the importance ratio in the loss absorbs. The graph is captured
once per batch of prompts, so nothing has to stay valid across optimizer steps; were graphs kept
between steps, in-place merging is what would keep them valid.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator

import torch

from harness.env.answers import AnswerWatch
from harness.loop.model import base_model, cache_keyword

WARMUP_STEPS = 3   # eager decode steps on a side stream before capture (CUDA)
CHECK_EVERY = 16   # decode steps between "all rows done?" host syncs (CUDA)


@contextlib.contextmanager
def merged_lora(model: torch.nn.Module) -> Iterator[None]:
    """Merge peft LoRA adapters into the base weights in place; restore them bit-exactly after.

    A model without adapters (no `merge_adapter`) is left as it is.
    """
    if not hasattr(model, "merge_adapter"):
        yield
        return
    from peft.tuners.tuners_utils import BaseTunerLayer

    weights = [m.get_base_layer().weight for m in model.modules()
               if isinstance(m, BaseTunerLayer)]
    saved = [w.detach().clone() for w in weights]
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()  # clears peft's "merged" flags (its subtraction is rounded...)
        with torch.no_grad():
            for w, s in zip(weights, saved, strict=True):
                w.copy_(s)  # ...so the saved bits go back, into the same storage


class _Decoder:
    """Prefill and a one-token decode step over a static cache, reading static buffers only."""

    def __init__(self, model: torch.nn.Module, input_BP: torch.Tensor, mask_BP: torch.Tensor,
                 max_new_tokens: int):
        from transformers import StaticCache

        base = base_model(model)
        self.decoder, self.head = base.get_decoder(), base.get_output_embeddings()
        batch, width = input_BP.shape
        length = width + max_new_tokens
        dev = input_BP.device
        self.dtype = self.head.weight.dtype
        self.cache = StaticCache(config=base.config, max_cache_len=length)
        self.cache_arg = cache_keyword(self.decoder.forward)
        self.wants_cache_position = \
            "cache_position" in inspect.signature(self.decoder.forward).parameters
        self.valid_BL = torch.ones(batch, length, dtype=torch.bool, device=dev)
        self.valid_BL[:, :width] = mask_BP.bool()
        self.slots_L = torch.arange(length, device=dev)
        self.input_BP, self.mask_BP = input_BP, mask_BP
        # static inputs of the decode step, advanced in place by the step itself
        self.token_B1 = torch.zeros(batch, 1, dtype=torch.long, device=dev)
        self.position_B1 = mask_BP.sum(-1, keepdim=True).long()  # first new token's position
        self.slot = torch.tensor(width, device=dev)              # its cache slot

    def _forward(self, input_ids, mask4, position_ids, slots) -> torch.Tensor:
        """Logits after the last input position; `slots` are the cache slots written."""
        kwargs = {self.cache_arg: self.cache}
        if self.wants_cache_position:
            kwargs["cache_position"] = slots
        out = self.decoder(input_ids=input_ids, attention_mask=mask4, position_ids=position_ids,
                           use_cache=True, **kwargs)
        return self.head(out.last_hidden_state[:, -1])  # (B, V)

    def _additive(self, allowed) -> torch.Tensor:
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=allowed.device)
        return mask.masked_fill_(~allowed, torch.finfo(self.dtype).min)

    def prefill(self) -> torch.Tensor:
        """Logits of the first new token; fills cache slots 0..width-1."""
        width = self.input_BP.shape[1]
        causal_PL = self.slots_L[None, :] <= self.slots_L[:width, None]
        mask4 = self._additive(self.valid_BL[:, None, None, :] & causal_PL)  # (B, 1, P, L)
        position_BP = (self.mask_BP.long().cumsum(-1) - 1).clamp(min=0)
        return self._forward(self.input_BP, mask4, position_BP, self.slots_L[:width])

    def step(self) -> torch.Tensor:
        """Logits after feeding `token_B1`; no host sync, so it can be captured in a graph."""
        allowed_BL = self.valid_BL & (self.slots_L <= self.slot)
        logits_BV = self._forward(self.token_B1, self._additive(allowed_BL[:, None, None, :]),
                                  self.position_B1, self.slot.view(1))
        self.position_B1.add_(1)
        self.slot.add_(1)
        return logits_BV


def pick(logits_BV: torch.Tensor, temperature: float, greedy: bool, eos_id: int
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Next token of each row, its log-prob and EOS's under softmax(logits / T), in fp32."""
    logp_BV = torch.log_softmax(logits_BV.float() / (1.0 if greedy else temperature), dim=-1)
    if greedy:
        token_B = logp_BV.argmax(-1)
    else:  # Gumbel-max: argmax(log p - log E), E ~ Exp(1), is a draw from p
        token_B = (logp_BV - torch.empty_like(logp_BV).exponential_().log()).argmax(-1)
    return token_B, logp_BV.gather(-1, token_B[:, None])[:, 0], logp_BV[:, eos_id]


@torch.no_grad()
def generate(model: torch.nn.Module, input_BP: torch.Tensor, mask_BP: torch.Tensor,
             max_new_tokens: int, temperature: float, eos_id: int, pad_id: int,
             greedy: bool = False, cuda_graph: bool | None = None,
             watch: AnswerWatch | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample up to `max_new_tokens` per left-padded row: (tokens_BN, logprobs_BN, and the
    log-prob of EOS at each position, eos_logprobs_BN).

    After a row's EOS its tokens are `pad_id` and its log-probs 0. N < max_new_tokens when
    every row finished early. `cuda_graph` defaults to "on CUDA". A `watch` is fed the tokens
    at every check and ends each row at its answer (`AnswerWatch.cut`).
    """
    if cuda_graph is None:
        cuda_graph = input_BP.device.type == "cuda"
    batch = input_BP.shape[0]
    tokens_BN = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long,
                           device=input_BP.device)
    logprobs_BN = torch.zeros(batch, max_new_tokens, device=input_BP.device)
    eos_BN = torch.zeros(batch, max_new_tokens, device=input_BP.device)
    with merged_lora(model):
        dec = _Decoder(model, input_BP, mask_BP, max_new_tokens)
        done_B = torch.zeros(batch, dtype=torch.bool, device=input_BP.device)

        def emit(t: int, logits_BV: torch.Tensor) -> None:
            token_B, logp_B, logp_eos_B = pick(logits_BV, temperature, greedy, eos_id)
            token_B = token_B.masked_fill(done_B, pad_id)
            tokens_BN[:, t] = token_B
            logprobs_BN[:, t] = logp_B.masked_fill(done_B, 0.0)
            eos_BN[:, t] = logp_eos_B
            done_B.logical_or_(token_B == eos_id)
            dec.token_B1.copy_(token_B[:, None])

        emit(0, dec.prefill())
        steps = _decode_steps(dec, cuda_graph)
        t, fed = 1, 0  # tokens emitted, tokens the watch has seen
        every = CHECK_EVERY if input_BP.device.type == "cuda" else 1
        while t < max_new_tokens:
            if t % every == 0:
                if watch is not None:
                    fed = _watch_block(watch, tokens_BN, fed, t, done_B)
                if bool(done_B.all()):
                    break
            emit(t, steps(t))
            t += 1
    tokens_BN, logprobs_BN, eos_BN = tokens_BN[:, :t], logprobs_BN[:, :t], eos_BN[:, :t]
    if watch is not None:
        _watch_block(watch, tokens_BN, fed, t, None)
        watch.cut(tokens_BN, logprobs_BN, eos_BN, pad_id)
    return tokens_BN, logprobs_BN, eos_BN


def _watch_block(watch: AnswerWatch, tokens_BN: torch.Tensor, first: int, stop: int,
                 done_B: torch.Tensor | None) -> int:
    """Feed tokens first..stop-1 to the watch (one host copy) and mark the rows it stopped
    done; returns `stop`, the tokens fed so far."""
    block = tokens_BN[:, first:stop].tolist()
    rows = list(range(len(block)))
    for k in range(stop - first):
        watch.feed(first + k, rows, [row[k] for row in block])
    if done_B is not None:
        stopped = [watch.stopped(b, stop - 1) for b in rows]
        done_B.logical_or_(torch.tensor(stopped, device=done_B.device))
    return stop


def _decode_steps(dec: _Decoder, cuda_graph: bool):
    """`steps(t) -> logits_BV` for t = 1, 2, ...: eager, or warm-up then graph replays."""
    if not cuda_graph:
        return lambda t: dec.step()
    side = torch.cuda.Stream()
    state: dict = {}

    def steps(t: int) -> torch.Tensor:
        if t <= WARMUP_STEPS:  # real steps, on a side stream as capture requires
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                logits_BV = dec.step()
            torch.cuda.current_stream().wait_stream(side)
            return logits_BV
        if "graph" not in state:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):  # records, does not run: the state is unchanged
                state["logits_BV"] = dec.step()
            state["graph"] = graph
        state["graph"].replay()
        return state["logits_BV"]

    return steps

"""Rollout and training throughput of the fast paths against the reference ones (issue 8).

Usage: python benchmarks/rollout_throughput.py [--model smollm2-shape|smollm2|tiny|ID]
       [--batches 16,64,256] [--new-tokens 512] [--train-shapes 16x1024,64x1024]
       [--micro-batch 4] [--repeats 1] [--device cuda|cpu]
Prints, all measured in this one run, with LoRA (rank 32) on as in the loop:
- sampling: generated tokens/s of transformers' `generate` and of `harness.loop.fast_sampler`
  (through `harness.loop.sampling.sample`, prefill, LoRA merge and graph capture included) at each
  batch size, and their ratio. Target on an H100 with `--model smollm2-shape`: fast >= 10x
  generate and >= 30,000 tok/s at batch 256.
- training: action tokens/s and peak GPU memory of one policy-gradient step (micro-batches as
  in `harness.loop.train`) with naive log-probs (B x T x V fp32 logits) and with the chunked ones of
  `harness.loop.logprobs`, at each B x T (B rollouts of T action tokens after a 16-token prompt).
  Target: 64x1024 within 40 GB.
`--model smollm2-shape` is a random model of SmolLM2-135M's shape (no model file needed); a
random model almost never emits EOS, so every row runs to --new-tokens. Quick CPU check:
`--model tiny --batches 2,4 --new-tokens 16 --train-shapes 2x64 --device cpu`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from loop_throughput import benchmark_policy

from harness.env import make_env
from harness.loop.model import Policy
from harness.loop.sampling import Rollout, sample
from harness.loop.train import action_logprobs, make_optimizer, right_padded

PROMPT_TOKENS = 16  # of each training rollout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-shape")
    ap.add_argument("--batches", default="16,64,256")
    ap.add_argument("--new-tokens", type=int, default=512)
    ap.add_argument("--train-shapes", default="16x1024,64x1024",
                    help="BxT list; empty skips training")
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    torch.manual_seed(0)
    policy = benchmark_policy(args.model, args.device)
    env = make_env("erdos")
    [state] = env.initial_solutions("construction")
    prompt = env.prompt(state, 0.5, "construction")
    prompt_tokens = len(sample(policy, [prompt], 1, 1)[0].prompt_ids)
    print(f"model={policy.name} device={args.device} dtype={policy.dtype} lora_rank=32 "
          f"prompt_tokens={prompt_tokens} new_tokens={args.new_tokens} repeats={args.repeats}")

    print("\nsampling: generated tokens/s (median)")
    print(f"{'batch':>6} {'generate':>12} {'fast':>12} {'fast/generate':>14}")
    for backend in ("off", "on"):  # warm-up: CUDA context, cuBLAS handles, first capture
        sample(policy, [prompt], 2, 8, fast_sampler=backend)
    for batch in [int(b) for b in args.batches.split(",")]:
        ref, fast = (sampling_tps(policy, prompt, batch, args, b) for b in ("off", "on"))
        print(f"{batch:>6} {ref:>12,.0f} {fast:>12,.0f} {fast / ref:>13.1f}x")

    shapes = [tuple(int(x) for x in s.split("x")) for s in args.train_shapes.split(",") if s]
    if shapes:
        print(f"\ntraining: action tokens/s and peak memory (micro_batch={args.micro_batch})")
        print(f"{'shape':>9} {'naive tok/s':>12} {'naive GB':>9} {'chunked tok/s':>14} "
              f"{'chunked GB':>11}")
    optimizer = make_optimizer(policy, 1e-5)
    for b, t in shapes:
        cells = []
        for fn in (naive_action_logprobs, action_logprobs):
            tps, peak = train_tps(policy, optimizer, b, t, fn, args)
            cells.append(f"{tps:>12,.0f} {peak:>9}" if fn is naive_action_logprobs
                         else f"{tps:>14,.0f} {peak:>11}")
        print(f"{f'{b}x{t}':>9} " + " ".join(cells))
    print("\ntargets (H100, smollm2-shape): fast >= 10x generate and >= 30,000 tok/s at "
          "batch 256;\n  chunked training at 64x1024 within 40 GB")


def sampling_tps(policy: Policy, prompt: str, batch: int, args, backend: str) -> float:
    rates = []
    for _ in range(args.repeats):
        _sync(args.device)
        t0 = time.perf_counter()
        rollouts = sample(policy, [prompt], batch, args.new_tokens, answer_prefix="[",
                          batch_size=batch, fast_sampler=backend)
        _sync(args.device)
        rates.append(sum(r.num_tokens for r in rollouts) / (time.perf_counter() - t0))
    return statistics.median(rates)


def naive_action_logprobs(policy: Policy, rollouts: list[Rollout]) -> list[torch.Tensor]:
    """What `harness.loop.train.action_logprobs` replaced: every position's logits, fp32,
    in memory."""
    input_BT, mask_BT = right_padded(policy, rollouts)
    logp_BTV = torch.log_softmax(policy.model(input_ids=input_BT, attention_mask=mask_BT)
                                 .logits.float(), dim=-1)
    out = []
    for b, r in enumerate(rollouts):
        s = len(r.prompt_ids) - 1
        out.append(logp_BTV[b, s:s + r.num_tokens].gather(
            -1, input_BT[b, s + 1:s + 1 + r.num_tokens, None])[:, 0])
    return out


def train_tps(policy: Policy, optimizer, batch: int, tokens: int, logprobs_fn, args
              ) -> tuple[float, str]:
    """Median action tokens/s of a policy-gradient step (one warm-up first) and peak GB."""
    gen = torch.Generator().manual_seed(0)
    vocab = policy.model.get_output_embeddings().weight.shape[0]
    rollouts = [Rollout(group=0, prompt_ids=torch.randint(vocab, (PROMPT_TOKENS,),
                                                          generator=gen).tolist(),
                        action_ids=torch.randint(vocab, (tokens,), generator=gen).tolist(),
                        logprobs=[-10.0] * tokens, text="", finished=False)
                for _ in range(batch)]
    advantages = [1.0 if i % 2 else -1.0 for i in range(batch)]
    rates = []
    for i in range(args.repeats + 1):
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        _sync(args.device)
        t0 = time.perf_counter()
        step(policy, optimizer, rollouts, advantages, logprobs_fn, args.micro_batch)
        _sync(args.device)
        if i:
            rates.append(batch * tokens / (time.perf_counter() - t0))
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f}" \
        if args.device.startswith("cuda") else "n/a"
    return statistics.median(rates), peak


def step(policy: Policy, optimizer, rollouts: list[Rollout], advantages: list[float],
         logprobs_fn, micro_batch: int) -> None:
    """`harness.loop.train.policy_gradient_step`'s loss and update, with the log-probs swappable."""
    total = sum(r.num_tokens for r in rollouts)
    policy.model.train()
    optimizer.zero_grad(set_to_none=True)
    for start in range(0, len(rollouts), micro_batch):
        chunk = rollouts[start:start + micro_batch]
        loss = torch.zeros((), device=policy.device)
        for r, adv, logp_T in zip(chunk, advantages[start:start + micro_batch],
                                  logprobs_fn(policy, chunk), strict=True):
            old_T = torch.tensor(r.logprobs, device=policy.device)
            loss = loss - (torch.exp(logp_T - old_T) * adv).sum() / total
        loss.backward()
    optimizer.step()
    policy.model.eval()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()

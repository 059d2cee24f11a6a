"""Rollout and train throughput of the TTT loop's two heavy stages, on any device.

Usage: python benchmarks/loop_throughput.py [--model smollm2|tiny|ID] [--batch 16]
       [--new-tokens 128] [--repeats 3] [--device cuda|cpu]
Prints the median tokens/s of sampling (generated tokens) and of the LoRA policy-gradient
step (action tokens trained on), and their ratio, measured in this one run. Without a model
hub, `--model smollm2` is the embedded model; a random model of SmolLM2's shape is
`--model smollm2-shape` (what to run on a GPU machine without the model file).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from harness.env import make_env
from harness.loop.model import Policy, add_lora, load_policy
from harness.loop.sampling import sample
from harness.loop.train import make_optimizer, policy_gradient_step


def benchmark_policy(model: str, device: str) -> Policy:
    """`smollm2-shape` (random weights, GPU-sized) or any `--model` name, with LoRA rank 32."""
    policy = load_policy(model, device)
    add_lora(policy, rank=32)
    return policy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    torch.manual_seed(0)
    policy = benchmark_policy(args.model, args.device)
    optimizer = make_optimizer(policy, 1e-5)
    env = make_env("erdos")
    [state] = env.initial_solutions("construction")
    prompt = env.prompt(state, 0.5, "construction")

    sample_tps, train_tps = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        rollouts = sample(policy, [prompt], args.batch, args.new_tokens, answer_prefix="[")
        _sync(args.device)
        t1 = time.perf_counter()
        advantages = [1.0 if i % 2 else -1.0 for i in range(len(rollouts))]
        stats = policy_gradient_step(policy, optimizer, rollouts, advantages)
        _sync(args.device)
        t2 = time.perf_counter()
        sample_tps.append(sum(r.num_tokens for r in rollouts) / (t1 - t0))
        train_tps.append(stats["tokens/train"] / (t2 - t1))
    s, t = statistics.median(sample_tps), statistics.median(train_tps)
    print(f"model={policy.name} device={args.device} dtype={policy.dtype} batch={args.batch} "
          f"new_tokens={args.new_tokens} prompt_tokens={len(rollouts[0].prompt_ids)}")
    print(f"sampling: {s:,.1f} generated tokens/s (median of {args.repeats})")
    print(f"training: {t:,.1f} action tokens/s (median of {args.repeats})")
    print(f"ratio training/sampling: {t / s:.2f}")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()

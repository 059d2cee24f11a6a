"""Sampling time of one group on the embedded job's prompt, against plain `generate` (issue 19).

Usage: python benchmarks/cpu_sampling.py [--model smollm2] [--group 8] [--new-tokens 128]
       [--repeats 3] [--device cpu]
On the Erdős construction prompt the main job starts from (a real start state, fitted as the
loop fits it), measures in this one run, median of --repeats, the same seeds for every row:
- `generate`, adapters off: transformers' `generate` making group x new-tokens tokens (no
  early stop), the reference the ratios divide by;
- `sample()` with LoRA attached, through each backend: `generate` (fast_sampler=off), the
  shared-prompt sampler without and with actions ending at their answer, in fp32, and with
  its linears in bf16 (`sample_dtype=bfloat16`; the scaled-down budgets' CPU default is the
  last row on a CPU with native bf16, the one before it elsewhere).
The time split of a TTT step (select / sample / evaluate / train) is in every run's
data/steps.csv (`time/*_s`); the README's main job gives it for the embedded model.
Target (issue 19): the CPU default at most half the time of `generate`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from loop_throughput import benchmark_policy

from harness.base.config import make_config
from harness.env import make_env
from harness.loop.buffer import Buffer
from harness.loop.sampling import chat_prompt_ids, left_pad, sample
from harness.loop.ttt import add_initial_states, build_prompts

ROWS = (("sample(), generate (fast_sampler=off)", "off", False, "model"),
        ("sample(), shared prompt", "shared", False, "model"),
        ("sample(), shared prompt, stop at answer", "shared", True, "model"),
        ("sample(), shared, stop, bf16 linears", "shared", True, "bfloat16"))


def erdos_prompt(policy) -> tuple[str, object]:
    """The first start state of the main job (seed 0) and its prompt, fitted as the loop
    fits it (`ttt.build_prompts`)."""
    env = make_env("erdos")
    cfg = make_config("small", env="erdos", seed=0)
    buffer = Buffer(cfg.c_puct, cfg.topk_children, cfg.buffer_size, cfg.epsilon, cfg.seed)
    add_initial_states(env, "construction", buffer, 1)
    prompts, _ = build_prompts(cfg, env, "construction", policy, list(buffer.states.values()))
    return prompts[0], env


def plain_generate(policy, prompt: str, group: int, new_tokens: int) -> float:
    ids = chat_prompt_ids(policy, prompt) + policy.tokenizer("[", add_special_tokens=False)[
        "input_ids"]
    input_BP, mask_BP = left_pad(policy, [ids] * group)
    t0 = time.perf_counter()
    with torch.no_grad(), policy.model.disable_adapter():
        policy.model.generate(input_ids=input_BP, attention_mask=mask_BP, do_sample=True,
                              top_k=0, top_p=1.0, max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens,
                              pad_token_id=policy.tokenizer.pad_token_id)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    policy = benchmark_policy(args.model, args.device)
    prompt, env = erdos_prompt(policy)
    rule = env.answer_end("construction")
    times: dict[str, list[float]] = {"generate, adapters off": []}
    tokens: dict[str, list[float]] = {"generate, adapters off": []}
    for repeat in range(args.repeats):
        torch.manual_seed(repeat)
        times["generate, adapters off"].append(
            plain_generate(policy, prompt, args.group, args.new_tokens))
        tokens["generate, adapters off"].append(args.new_tokens)
        for label, setting, stop, dtype in ROWS:
            torch.manual_seed(repeat)
            t0 = time.perf_counter()
            rollouts = sample(policy, [prompt], args.group, args.new_tokens, answer_prefix="[",
                              fast_sampler=setting, answer_end=rule, stop_at_answer=stop,
                              sample_dtype=dtype)
            times.setdefault(label, []).append(time.perf_counter() - t0)
            tokens.setdefault(label, []).append(
                statistics.fmean(r.num_tokens for r in rollouts))
    reference = statistics.median(times["generate, adapters off"])
    print(f"model={args.model} device={args.device} group={args.group} "
          f"new_tokens<={args.new_tokens} prompt_tokens={len(chat_prompt_ids(policy, prompt))} "
          f"torch_threads={torch.get_num_threads()} (median of {args.repeats})")
    print(f"{'':45s} {'seconds':>8s} {'ratio':>6s} {'tokens/row':>10s} {'tokens/s':>9s}")
    for label, values in times.items():
        sec, per_row = statistics.median(values), statistics.median(tokens[label])
        print(f"{label:45s} {sec:8.2f} {sec / reference:6.2f} {per_row:10.1f} "
              f"{args.group * per_row / sec:9.1f}")


if __name__ == "__main__":
    main()

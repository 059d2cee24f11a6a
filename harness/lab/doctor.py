"""`harness doctor`: does harness work on this machine, and how fast?

Two sections. **Install**: library versions, CUDA and the GPU, the compilers AtCoder needs,
the sandbox's isolation, whether the embedded model loads, whether an Anthropic key is set
(never its value). **Measured**, every figure in this run: one sampling batch and one LoRA
training step (tokens/s, peak memory), the sandbox's round trip, each env's verifier on its
initial solution; on CUDA also the fast sampler against transformers `generate`, training at
64 x 1024 tokens (chunked log-probs against naive), bf16 against fp32 agreement and the
TriMul reference. Each check that finds a problem says what to do, in one line, at the end.
"""

from __future__ import annotations

import importlib.metadata
import os
import random
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psutil
import torch

from harness.base.config import Config
from harness.env import ENVS, make_env, resolve_action
from harness.sandbox.isolation import isolation
from harness.sandbox.runner import Limits, call_python

LIBRARIES = ("torch", "transformers", "peft", "triton")


@dataclass
class Check:
    section: str   # "install" or "measured"
    name: str
    value: str     # what the table shows
    data: dict = field(default_factory=dict)  # the numbers, for --json
    problem: str = ""  # one line: what is wrong and what to do ("" when fine)


def run_checks(device: str, quick: bool, say: Callable[[str], None] = lambda _: None
               ) -> list[Check]:
    """Every check, in order; `say` hears each row as it is done (a slow machine shows
    progress). A check that raises is a row with its error, not a crash."""
    steps: list[Callable[[], list[Check]]] = [
        versions, lambda: [cuda_info()], lambda: [compilers()], lambda: [sandbox_isolation()],
        lambda: [anthropic_key()], lambda: model_and_loop(device, quick), lambda: [round_trip()],
        lambda: verifiers(device, quick)]
    if device == "cuda":
        steps += cuda_checks(quick)
    rows: list[Check] = []
    for step in steps:
        try:
            got = step()
        except Exception as err:  # a broken check is a finding, and the others still run
            got = [Check("measured", getattr(step, "__name__", "check"), "failed",
                         problem=f"{type(err).__name__}: {err}"[:200])]
        for row in got:
            say(f"{row.name}: {row.value}")
        rows += got
    return rows


def versions() -> list[Check]:
    rows = []
    for lib in LIBRARIES:
        try:
            rows.append(Check("install", lib, importlib.metadata.version(lib)))
        except importlib.metadata.PackageNotFoundError:
            need = lib != "triton" or torch.cuda.is_available()
            rows.append(Check("install", lib, "not installed",
                              problem=f"pip install {lib}" if need else ""))
    return rows


def cuda_info() -> Check:
    if not torch.cuda.is_available():
        return Check("install", "cuda", "no CUDA device (CPU only)", {"available": False})
    props = torch.cuda.get_device_properties(0)
    gb = props.total_memory / 2**30
    return Check("install", "cuda", f"{props.name}, {gb:.0f} GiB, CUDA {torch.version.cuda}",
                 {"available": True, "name": props.name, "memory_gib": round(gb, 1),
                  "cuda": torch.version.cuda})


def compilers() -> Check:
    gxx = shutil.which("g++")
    if gxx is None:
        return Check("install", "g++ (AtCoder envs)", "missing", {"g++": None},
                     problem="AtCoder envs need g++: apt-get install g++")
    first = subprocess.run([gxx, "--version"], capture_output=True, text=True).stdout
    return Check("install", "g++ (AtCoder envs)", first.splitlines()[0], {"g++": gxx})


def sandbox_isolation() -> Check:
    iso = isolation()
    info = iso.describe()
    value = (f"files hidden by {iso.mechanism}" if iso.hide else "files NOT hidden") + \
        (", no network" if iso.net else ", network reachable") + \
        (", process cgroup" if iso.cgroup else "")
    return Check("install", "sandbox", value, info, problem=iso.warning())


def anthropic_key() -> Check:
    present = bool(os.environ.get("ANTHROPIC_API_KEY"))
    return Check("install", "anthropic key", "set" if present else "not set (offline planner "
                 "and reviewer)", {"set": present})


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_gb(device: str) -> float:
    """Peak GPU memory allocated on CUDA; on CPU this process's resident memory now."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return psutil.Process().memory_info().rss / 2**30


def _memory(device: str) -> str:
    return f"{'peak' if device == 'cuda' else 'RSS'} {_peak_gb(device):.1f} GB"


def model_and_loop(device: str, quick: bool) -> list[Check]:
    """Load the embedded model, then one sampling batch and one LoRA step on an Erdős prompt."""
    from harness.loop.model import add_lora, load_policy
    from harness.loop.sampling import describe, sample
    from harness.loop.train import make_optimizer, policy_gradient_step

    t0 = time.perf_counter()
    policy = load_policy("smollm2", device)
    load_s = time.perf_counter() - t0
    rows = [Check("install", "embedded model", f"smollm2 loads ({load_s:.1f} s, "
                  f"{policy.dtype})".replace("torch.", ""), {"load_s": load_s})]
    add_lora(policy, rank=32)
    env = make_env("erdos")
    [state] = env.initial_states("construction", random.Random(0), 1)
    prompt = env.prompt(state.solution, state.raw_score, "construction")
    group, new_tokens = (2, 16) if quick else (8, 128)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    rollouts = sample(policy, [prompt], group, new_tokens, answer_prefix="[")
    _sync(device)
    sample_s = time.perf_counter() - t0
    generated = sum(r.num_tokens for r in rollouts)
    how = describe("auto", "auto", device)
    linears = str(policy.dtype).removeprefix("torch.") if how["linear_dtype"] == "model" \
        else how["linear_dtype"]
    rows.append(Check("measured", "sampling", f"{generated / sample_s:,.1f} tokens/s ({group} x "
                      f"<= {new_tokens} new tokens, {sample_s:.1f} s, {_memory(device)}; "
                      f"{how['backend']} sampler, linears in {linears})",
                      {"tokens_per_s": generated / sample_s, "tokens": generated,
                       "seconds": sample_s, "peak_gb": _peak_gb(device), **how}))
    optimizer = make_optimizer(policy, 1e-5)
    t0 = time.perf_counter()
    stats = policy_gradient_step(policy, optimizer, rollouts,
                                 [1.0 if i % 2 else -1.0 for i in range(len(rollouts))],
                                 micro_batch=len(rollouts))
    _sync(device)
    train_s = time.perf_counter() - t0
    rows.append(Check("measured", "LoRA training step",
                      f"{stats['tokens/train'] / train_s:,.1f} tokens/s ({train_s:.1f} s, "
                      f"{_memory(device)})",
                      {"tokens_per_s": stats["tokens/train"] / train_s,
                       "tokens": stats["tokens/train"], "seconds": train_s,
                       "peak_gb": _peak_gb(device)}))
    return rows


def round_trip(repeats: int = 5) -> Check:
    """Median wall time of a trivial sandboxed call (the floor under every program action)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = call_python("def f():\n    return 1\n", "f", {}, Limits(wall_s=20))
        times.append(time.perf_counter() - t0)
        if not result.ok:
            return Check("measured", "sandbox round trip", "failed", {},
                         problem=f"the sandbox cannot run Python: {result.reason}")
    ms = statistics.median(times) * 1000
    return Check("measured", "sandbox round trip", f"{ms:.0f} ms (median of {repeats})",
                 {"ms": ms})


def verifiers(device: str, quick: bool) -> list[Check]:
    """Each env's verifier on its initial solution: its raw score and how long it took."""
    rows = []
    for name in ENVS:
        if name == "trimul" and device != "cuda":
            rows.append(Check("measured", f"verifier {name}", "skipped: needs CUDA",
                              {"skipped": "needs CUDA"}))
            continue
        env = make_env(name, **({"n_cases": 2} if quick and name.startswith("ahc") else {}))
        action = resolve_action(Config(), env)
        t0 = time.perf_counter()
        result = env.score(env.initial_solutions(action)[0], action)
        seconds = time.perf_counter() - t0
        value = (f"{result.raw_score:.6g} on its initial solution ({seconds * 1000:.0f} ms)"
                 if result.valid else f"invalid: {result.message}")
        rows.append(Check("measured", f"verifier {name}", value,
                          {"valid": result.valid, "raw_score": result.raw_score,
                           "seconds": seconds},
                          problem="" if result.valid else f"{name}'s initial solution does "
                          f"not verify: {result.message}"))
    return rows


def cuda_checks(quick: bool) -> list[Callable[[], list[Check]]]:
    """The GPU paths, each its own check: the fast sampler against generate, training
    memory (on a random model of SmolLM2's shape), bf16 agreement (the embedded model) and
    the TriMul kernels."""
    from functools import cache

    from harness.loop.model import add_lora, load_policy

    @cache
    def shaped():
        policy = load_policy("smollm2-shape", "cuda")
        add_lora(policy, rank=32)
        return policy

    batches = (16,) if quick else (16, 64, 256)
    return [lambda: [sampler_against_generate(shaped(), b) for b in batches],
            lambda: [training_memory(shaped())], lambda: [bf16_agreement()],
            lambda: [trimul_reference()]]


def _timed_sample(policy, batch: int, setting: str, new_tokens: int) -> tuple[float, int]:
    from harness.loop.sampling import sample

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    rollouts = sample(policy, ["Write a list of numbers."], batch, new_tokens,
                      fast_sampler=setting)
    torch.cuda.synchronize()
    return time.perf_counter() - t0, sum(r.num_tokens for r in rollouts)


def sampler_against_generate(policy, batch: int, new_tokens: int = 256) -> Check:
    _timed_sample(policy, min(batch, 16), "on", 16)  # warm-up: graphs, kernels
    fast_s, fast_tokens = _timed_sample(policy, batch, "on", new_tokens)
    gen_s, gen_tokens = _timed_sample(policy, batch, "off", new_tokens)
    fast_tps, gen_tps = fast_tokens / fast_s, gen_tokens / gen_s
    ratio = fast_tps / gen_tps
    target = batch == 256 and (ratio < 10 or fast_tps < 30_000)
    return Check("measured", f"fast sampler at batch {batch}",
                 f"{fast_tps:,.0f} tokens/s, {ratio:.1f}x generate ({gen_tps:,.0f})",
                 {"batch": batch, "fast_tokens_per_s": fast_tps,
                  "generate_tokens_per_s": gen_tps, "ratio": ratio},
                 problem="below the target (>= 10x generate and >= 30k tokens/s at batch "
                 "256)" if target else "")


def training_memory(policy, rows: int = 64, tokens: int = 1024) -> Check:
    """Peak GPU memory of one LoRA step on rows x tokens (chunked log-probs, the loop's), and
    of the same forward and backward through full-vocabulary logits (naive)."""
    from harness.loop.sampling import Rollout
    from harness.loop.train import make_optimizer, policy_gradient_step

    vocab = policy.model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (rows, tokens), generator=gen)
    cut = tokens // 4
    batch = [Rollout(0, row[:cut], row[cut:], [-1.0] * (tokens - cut), "", True, True)
             for row in ids.tolist()]
    optimizer = make_optimizer(policy, 1e-5)
    torch.cuda.reset_peak_memory_stats()
    policy_gradient_step(policy, optimizer, batch, [1.0] * rows, micro_batch=rows)
    torch.cuda.synchronize()
    chunked = torch.cuda.max_memory_allocated() / 2**30
    naive = _naive_step_peak(policy, ids.to("cuda"))
    shown = f"{naive:.1f} GB" if naive is not None else "out of memory"
    return Check("measured", f"training {rows}x{tokens} tokens",
                 f"peak {chunked:.1f} GB chunked, {shown} naive",
                 {"peak_gb": chunked, "naive_peak_gb": naive},
                 problem="above the 40 GB target" if chunked > 40 else "")


def _naive_step_peak(policy, ids_BT: torch.Tensor) -> float | None:
    """Peak GB of log-probs from full B x T x V logits, forward and backward; None on OOM."""
    optimizer_free = [p for p in policy.model.parameters() if p.requires_grad]
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    try:
        logits = policy.model(input_ids=ids_BT).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids_BT[:, 1:, None])
        (-logp.mean()).backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**30
    except torch.cuda.OutOfMemoryError:
        return None
    finally:
        for p in optimizer_free:
            p.grad = None
        torch.cuda.empty_cache()


def bf16_agreement(tokens: int = 32) -> Check:
    """Greedy tokens of the embedded model in bf16 against fp32 on a fixed prompt."""
    from harness.loop.model import load_policy
    from harness.loop.sampling import left_pad

    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        policy = load_policy("smollm2", "cuda")
        policy.model.to(dtype)
        ids, mask = left_pad(policy, [policy.tokenizer("The first ten primes are")["input_ids"]])
        with torch.no_grad():
            gen = policy.model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                        max_new_tokens=tokens, min_new_tokens=tokens)
        out[dtype] = gen[0, ids.shape[1]:].tolist()
    same = next((i for i, (a, b) in enumerate(zip(*out.values(), strict=True)) if a != b),
                tokens)
    return Check("measured", "bf16 vs fp32 greedy", f"first {same} of {tokens} tokens equal",
                 {"equal_prefix": same, "tokens": tokens},
                 problem="" if same >= tokens else f"bf16 greedy differs from fp32 at token "
                 f"{same} (target: all of the first {tokens})")


def trimul_reference() -> Check:
    """The TriMul env's reference implementation and its initial candidate, in µs."""
    import inspect
    from pathlib import Path

    env = make_env("trimul")
    reference = Path(inspect.getfile(type(env))).with_name("reference.py").read_text()
    sources = {"reference": reference + "\n\ndef custom_kernel(data):\n"
                                        "    return trimul_reference(data)\n",
               "initial candidate": env.initial_solutions("program")[0]}
    results = {}
    for name, source in sources.items():
        result = env.score(source, "program")
        results[name] = result.raw_score if result.valid else None
    value = ", ".join(f"{k} {v:.1f} µs" if v else f"{k} invalid" for k, v in results.items())
    return Check("measured", "TriMul", value, results,
                 problem="" if all(results.values()) else "a TriMul candidate does not verify "
                 "on this GPU (see the value)")


def as_json(rows: list[Check], device: str, quick: bool) -> dict:
    return {"device": device, "quick": quick,
            "checks": {row.name: {**asdict(row)} for row in rows},
            "problems": [f"{row.name}: {row.problem}" for row in rows if row.problem]}


def table(rows: list[Check]) -> str:
    width = max(len(r.name) for r in rows)
    lines = []
    for section in ("install", "measured"):
        lines.append(f"{section}:")
        lines += [f"  {r.name.ljust(width)}  {r.value}" for r in rows if r.section == section]
    problems = [r for r in rows if r.problem]
    lines.append("problems:" if problems else "problems: none")
    lines += [f"  {r.name}: {r.problem}" for r in problems]
    return "\n".join(lines)

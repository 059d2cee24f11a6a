"""The TriMul runner: runs INSIDE the sandbox, checks a candidate and times it.

`harness.sandbox.call_python` loads this file as its module and calls `evaluate(...)`, passing
the texts of reference.py, verifier.py and the candidate (so nothing needs to be installed in
the sandbox; this file imports only the standard library and torch). In order, it:
1. imports torch (and torch._dynamo, which rebinds torch.manual_seed when first imported),
   loads the reference and the verifier, and BEFORE the candidate's code runs, snapshots what
   it relies on: the CUDA events it will time with (created now), the bound record /
   elapsed-time / synchronize functions and the device-wide synchronize, the reference, the
   input generator and the checker as local references, and the callables of torch,
   torch.Tensor, torch.nn.functional, torch.cuda, the event classes, builtins, math, os, time,
   this module and the two loaded ones (the "watch list");
2. imports the candidate (written to ./submission.py, so that Triton can read its source);
3. correctness: every test shape twice, with fresh random seeds. The candidate gets a fresh
   copy of the inputs; the reference is computed only after it returns, from inputs the
   runner regenerates from the seed, in fp32 without TF32; then `check_output`. A stale or
   cached output fails, since the second call of a shape has other inputs;
4. timing (CUDA only), per benchmark shape: 3 warm-up calls (the first is checked: a kernel
   tuned for large shapes must be right there too), then R timed calls (5 <= R <= 50, about
   1 s), each on freshly generated inputs with a fresh seed, after an L2 flush (256 MB
   written). A call is timed by events on the runner's stream: start recorded before the call;
   after it returns, a device-wide synchronize (so work left on side streams counts), then
   the end event. The output of the last timed call and of one other, drawn at random, is
   copied right after the call and checked afterwards against a reference recomputed from
   the same seed. Score: the median per shape; the raw score the geometric mean over shapes.
   Each figure includes the host's synchronize latency (`overhead_us`, measured with a no-op
   before the candidate loads, is reported, not subtracted), so it reads a few µs above a
   pure stream-event timing.
After every candidate call, before anything else runs, the watch list is compared with its
snapshot: any replaced or added entry (say torch.allclose, torch.cuda.Event.elapsed_time,
torch.Tensor.__sub__) or an active torch function / dispatch mode rejects the candidate, and
the return value must be a plain torch.Tensor (a subclass could fake comparisons).

Defended: monkeypatching the timer, the synchronize, the comparison or the reference (in
torch, builtins, or this module); returning cached, stale or precomputed outputs (seeds are
drawn per call from the OS, so nothing can be prepared at import time); skipping work on
some timed calls, whenever one of them is among the two checked; work left running on
another stream; returning a tensor that the candidate fills in later (checked
copies are taken at once); mutating its inputs (it only has a copy).

NOT defended (the runner shares a process with the candidate, so a deliberate attacker
wins): reading the runner's frames or objects (sys._getframe, gc, ctypes) to learn the draws
or the result channel's nonce and forge the verdict (the reference output itself does not
exist while the candidate runs; freed GPU memory holds only past references, for other
inputs); patching during its own call and restoring before returning, with effects only
inside the call; background threads that work between timed calls or patch after the
checks; overriding aten kernels through torch.library or editing C-level state. The checks
spot-check outputs (2 of R timed calls), so a kernel that is wrong on rare calls may pass.
The sandbox's own limits (time, processes, files, network) hold regardless.
"""

from __future__ import annotations

import builtins
import importlib.util
import math
import os
import sys
import time
import traceback
import types

WARMUP = 3
MIN_REPEATS = 5
MAX_REPEATS = 50
SHAPE_BUDGET_S = 1.0  # timed calls per shape: about this much candidate time
FLUSH_BYTES = 256 * 2**20  # larger than the L2 of current GPUs (H100: 50 MB)


class Rejected(Exception):
    """The candidate is invalid; the message is the one line the user sees."""


def evaluate(candidate_source: str, reference_source: str, verifier_source: str,
             device: str = "cuda", tests: list | None = None, benchmarks: list | None = None,
             timing: bool = True) -> dict:
    """The verdict: {"valid", "message", "geomean_us", "runtimes_us", "repeats",
    "overhead_us", "device"}. Never raises for a bad candidate."""
    import torch
    import torch._dynamo  # noqa: F401  (on import it rewraps torch.manual_seed: do it before
    # the snapshot, so that a candidate using torch.compile is not taken for a patcher)

    reference = _load("trimul_reference", reference_source)
    verifier = _load("trimul_verifier", verifier_source)
    t = _snapshot(torch, reference, verifier, device, timing)
    last_line = _last_line
    verdict = {"valid": False, "message": "", "geomean_us": None, "runtimes_us": {},
               "repeats": {}, "overhead_us": t.overhead_us, "device": t.device_name}
    try:
        try:
            module = _load("submission", candidate_source, write=True)
        except Exception as exc:
            raise t.rejected(f"importing the candidate failed: {last_line(exc)}") from None
        t.verify_untouched("while importing")
        kernel = getattr(module, "custom_kernel", None)
        if not callable(kernel):
            raise t.rejected("the candidate defines no function custom_kernel(data)")
        for shape in tests or []:
            for _ in range(2):
                t.check_call(kernel, shape, t.draw_seed())
        for shape in benchmarks or []:
            if t.time_shape is not None:
                times_us = t.time_shape(kernel, shape)
                name = t.shape_name(shape)
                verdict["runtimes_us"][name] = t.median(times_us)
                verdict["repeats"][name] = len(times_us)
            else:
                t.check_call(kernel, shape, t.draw_seed())
    except t.rejected as why:
        verdict["message"] = str(why)
        return verdict
    if verdict["runtimes_us"]:
        verdict["geomean_us"] = t.geometric_mean(verdict["runtimes_us"].values())
    verdict["valid"], verdict["message"] = True, "ok"
    return verdict


def _load(name: str, source: str, write: bool = False) -> types.ModuleType:
    """Import `source` as module `name` (from ./name.py when `write`: Triton reads sources)."""
    if write:
        path = f"{name}.py"
        with open(path, "w") as f:
            f.write(source)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def _last_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()[:300]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _watched(torch, extra: list) -> dict:
    """label -> namespace: torch's modules and tensor / event classes, builtins, math, os,
    time, and the `extra` modules (this one, the reference, the verifier)."""
    spaces = {"torch": torch, "torch.nn.functional": torch.nn.functional,
              "torch.cuda": torch.cuda, "builtins": builtins, "math": math, "os": os,
              "time": time}
    for cls in torch.Tensor.__mro__[:-1] + torch.cuda.Event.__mro__[:-1]:
        spaces[f"{cls.__module__}.{cls.__qualname__}"] = cls
    for module in extra:
        spaces[module.__name__] = module
    return spaces


def _snapshot(torch, reference, verifier, device: str, timing: bool) -> types.SimpleNamespace:
    """Everything the runner uses after the candidate loads, bound now (see the docstring):
    closures over local names, so rebinding a global or a library attribute later changes
    nothing here (and is caught by `verify_untouched`)."""
    vars_, callable_, isinstance_, type_, sorted_, set_, len_, dict_ = \
        vars, callable, isinstance, type, sorted, set, len, dict
    urandom, from_bytes, perf_counter = os.urandom, int.from_bytes, time.perf_counter
    rejected, last_line = Rejected, _last_line
    warmup, min_repeats, max_repeats, budget_s = WARMUP, MIN_REPEATS, MAX_REPEATS, \
        SHAPE_BUDGET_S
    make_inputs, trimul_reference = reference.make_inputs, reference.trimul_reference
    fp32_matmuls, check_output = reference.fp32_matmuls, verifier.check_output
    shape_name, geometric_mean = verifier.shape_name, verifier.geometric_mean
    clone, tensor_type = torch.Tensor.clone, torch.Tensor
    fn_modes, dispatch_modes = torch._C._len_torch_function_stack, \
        torch._C._len_torch_dispatch_stack

    def entries(ns) -> dict:
        """A class in full; a module by its callables (its other values may change)."""
        items = vars_(ns).items()
        if isinstance_(ns, type_):
            return dict_(items)
        return {k: v for k, v in items if callable_(v)}

    spaces = _watched(torch, [sys.modules[__name__], reference, verifier])
    before = {label: entries(ns) for label, ns in spaces.items()}

    def verify_untouched(when: str) -> None:
        changed = []
        for label, ns in spaces.items():
            now, then = entries(ns), before[label]
            changed += [f"{label}.{k}" for k in sorted_(set_(now) | set_(then))
                        if now.get(k) is not then.get(k)]
        if changed:
            raise rejected(f"the candidate modified {', '.join(changed[:3])} {when}; "
                           "it must not patch torch, Python built-ins or the runner")
        if fn_modes() or dispatch_modes():
            raise rejected(f"the candidate left a torch function/dispatch mode active {when}")

    def draw(n: int) -> int:
        """Uniform in [0, n), from the OS: nothing the candidate could seed or predict."""
        return from_bytes(urandom(8), "little") % n

    def fresh_inputs(shape: dict, seed: int) -> dict:
        return make_inputs(shape["seqlen"], shape["bs"], shape["dim"], shape["hidden"],
                           shape["distribution"], shape["with_mask"], seed, device)

    def returned(out, where: str):
        verify_untouched(where)
        if type_(out) is not tensor_type:
            raise rejected(f"custom_kernel must return a torch.Tensor, got "
                           f"{type_(out).__name__} {where}")
        return out

    def call(kernel, data: dict, where: str):
        """The candidate on a private copy of `data`."""
        copy = {k: clone(v) for k, v in data.items()}
        try:
            out = kernel(copy)
        except Exception as exc:
            raise rejected(f"custom_kernel raised {last_line(exc)} {where}") from None
        return returned(out, where)

    def check(out, shape: dict, seed: int, where: str) -> None:
        data = fresh_inputs(shape, seed)  # recomputed, never kept while the candidate runs
        with fp32_matmuls():
            expected = trimul_reference(data)
        try:
            check_output(out, expected)
        except ValueError as why:
            raise rejected(f"wrong output {where}: {why}") from None
        except Exception as exc:  # an output the checker cannot even read (sparse, meta...)
            raise rejected(f"unreadable output {where}: {last_line(exc)}") from None

    def check_call(kernel, shape: dict, seed: int) -> None:
        where = f"on {shape_name(shape)} (seed {seed})"
        check(call(kernel, fresh_inputs(shape, seed), where), shape, seed, where)

    t = types.SimpleNamespace(
        verify_untouched=verify_untouched, check_call=check_call, shape_name=shape_name,
        geometric_mean=geometric_mean, draw_seed=lambda: draw(2**31), rejected=rejected,
        median=_median, overhead_us=None, device_name=device, time_shape=None)
    if not (timing and device.startswith("cuda")):
        return t

    # --- CUDA timing, bound before the candidate exists ---
    stream = torch.cuda.current_stream()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    record, elapsed_ms = torch.cuda.Event.record, torch.cuda.Event.elapsed_time
    wait_event, device_sync = torch.cuda.Event.synchronize, torch._C._cuda_synchronize
    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.float32, device=device)
    zero_ = torch.Tensor.zero_

    def timed(kernel, data: dict) -> tuple[object, float]:
        """(output, µs) of one call: L2 flushed, events on our stream, all streams waited."""
        copy = {k: clone(v) for k, v in data.items()}
        zero_(flush)
        device_sync()
        record(start, stream)
        out = kernel(copy)
        device_sync()
        record(end, stream)
        wait_event(end)
        return out, 1000.0 * elapsed_ms(start, end)

    def time_shape(kernel, shape: dict) -> list[float]:
        name = shape_name(shape)
        check_call(kernel, shape, draw(2**31))  # the first warm-up call, checked
        per_call_s = budget_s / min_repeats
        for _ in range(warmup - 1):
            t0 = perf_counter()
            call(kernel, fresh_inputs(shape, draw(2**31)), f"in warm-up on {name}")
            device_sync()
            per_call_s = perf_counter() - t0
        repeats = int(min(max_repeats, max(min_repeats, budget_s / max(per_call_s, 1e-6))))
        drawn = draw(repeats - 1)
        times_us, kept = [], []
        for i in range(repeats):
            seed = draw(2**31)
            where = f"in timed call {i} on {name} (seed {seed})"
            try:
                out, us = timed(kernel, fresh_inputs(shape, seed))
            except Exception as exc:
                raise rejected(f"custom_kernel raised {last_line(exc)} {where}") from None
            returned(out, where)
            if i in (drawn, repeats - 1):
                kept.append((clone(out), seed, where))
            times_us.append(us)
        for out, seed, where in kept:
            check(out, shape, seed, where)
        return times_us

    times = sorted_(timed(lambda data: None, {})[1] for _ in range(20))
    t.overhead_us = times[len_(times) // 2]
    t.device_name = torch.cuda.get_device_name()
    t.time_shape = time_shape
    return t

"""The trimul env: reference, checker, runner (through the sandbox, on CPU at tiny shapes) and
the one-line refusal without CUDA. Full scoring and timing are `gpu` tests."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from envs.trimul import runner
from envs.trimul.env import NO_CUDA, TIME_LIMIT_S, TriMulEnv, run_candidate
from envs.trimul.initial_candidate import custom_kernel as initial_kernel
from envs.trimul.reference import make_inputs, trimul_reference
from envs.trimul.verifier import (
    ATOL,
    BENCHMARK_SHAPES,
    RTOL,
    TEST_SHAPES,
    check_output,
    geometric_mean,
)
from harness.cli import main
from harness.env import Env, EnvError, make_env

HERE = Path(__file__).resolve().parents[1] / "envs" / "trimul"
INITIAL = (HERE / "initial_candidate.py").read_text()
HONEST = INITIAL.replace("def custom_kernel", "def honest_kernel")  # for hostile candidates
NO_GPU = not torch.cuda.is_available()


def tiny(seqlen, bs, dim, distribution="normal", with_mask=False, hidden=8) -> dict:
    return {"seqlen": seqlen, "bs": bs, "dim": dim, "hidden": hidden,
            "distribution": distribution, "with_mask": with_mask}


TINY = [tiny(8, 1, 8), tiny(12, 2, 16, "cauchy", True)]


def inputs(shape: dict, seed: int = 0) -> dict:
    return make_inputs(**shape, seed=seed)


# --- reference ---
def naive_trimul(d: dict) -> torch.Tensor:
    """The formula position by position, in float64, with hand-written layer norms."""
    w = {k: v.double() for k, v in d.items()}
    x = w["x"]
    B, N, _, C = x.shape

    def ln(v, weight, bias):
        mu = v.mean()
        return (v - mu) / math.sqrt(((v - mu) ** 2).mean() + 1e-5) * weight + bias

    def sig(z):
        return 1 / (1 + torch.exp(-z))

    xn = {(b, i, j): ln(x[b, i, j], w["norm_in_w"], w["norm_in_b"])
          for b in range(B) for i in range(N) for j in range(N)}

    def side(p, g, b, i, k):
        v = xn[b, i, k]
        return (w[p] @ v) * sig(w[g] @ v) * w["mask"][b, i, k]

    out = torch.zeros(B, N, N, C, dtype=torch.float64)
    for b in range(B):
        for i in range(N):
            for j in range(N):
                t = sum(side("left_proj_w", "left_gate_w", b, i, k)
                        * side("right_proj_w", "right_gate_w", b, j, k) for k in range(N))
                gated = ln(t, w["norm_out_w"], w["norm_out_b"]) * sig(w["out_gate_w"] @ xn[b, i, j])
                out[b, i, j] = w["out_proj_w"] @ gated
    return out


@pytest.mark.parametrize("shape", [tiny(5, 2, 6, "normal", True, hidden=4),
                                   tiny(6, 1, 8, "cauchy", False, hidden=4)])
def test_reference_matches_a_naive_loop(shape):
    d = inputs(shape, seed=3)
    assert torch.allclose(trimul_reference(d).double(), naive_trimul(d), rtol=1e-4, atol=1e-5)


def test_inputs_depend_only_on_the_seed():
    a, b, c = inputs(TINY[1], 1), inputs(TINY[1], 1), inputs(TINY[1], 2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["x"], c["x"])
    assert set(a["mask"].unique().tolist()) == {0.0, 1.0}


# --- checker ---
def test_check_output_accepts_the_reference():
    ref = trimul_reference(inputs(TINY[1]))
    check_output(ref.clone(), ref)
    check_output(ref + 0.5 * ATOL, ref)


@pytest.mark.parametrize("corrupt, why", [
    (lambda r: r.index_put((torch.tensor([0]),), torch.tensor(float("nan"))), "non-finite"),
    (lambda r: r[..., :-1], "shape"),
    (lambda r: r.double(), "dtype"),
    (lambda r: r.tolist(), "must return a Tensor"),
    (lambda r: r.as_subclass(type("Liar", (torch.Tensor,), {})), "must return a Tensor"),
])
def test_check_output_rejects_malformed_outputs(corrupt, why):
    ref = trimul_reference(inputs(TINY[1]))
    with pytest.raises(ValueError, match=why):
        check_output(corrupt(ref.clone()), ref)


def test_check_output_names_the_worst_element_of_a_perturbed_output():
    ref = trimul_reference(inputs(TINY[1]))
    out = ref.clone()
    out[1, 2, 3, 4] += 0.1 + RTOL * out[1, 2, 3, 4].abs()
    with pytest.raises(ValueError, match=r"1 of \d+ values outside .* worst at \(1, 2, 3, 4\)"):
        check_output(out, ref)


def variant(d: dict, *, precision=torch.float32, incoming=False, mask=True, gate=True,
            affine=True) -> torch.Tensor:
    """TriMul with the operands of every matmul in `precision` (fp32 accumulation), or with
    one structural mistake."""
    f, H = torch.nn.functional, d["left_proj_w"].shape[0]
    xn = f.layer_norm(d["x"], d["x"].shape[-1:], d["norm_in_w"], d["norm_in_b"], 1e-5)

    def mm(a, w):
        return (a.to(precision) @ w.t().to(precision)).float()

    m = d["mask"][..., None] if mask else 1.0
    left = mm(xn, d["left_proj_w"]) * torch.sigmoid(mm(xn, d["left_gate_w"])) * m
    right = mm(xn, d["right_proj_w"]) * torch.sigmoid(mm(xn, d["right_gate_w"])) * m
    eq = "bkih,bkjh->bijh" if incoming else "bikh,bjkh->bijh"
    t = torch.einsum(eq, left.to(precision), right.to(precision)).float()
    norm = (d["norm_out_w"], d["norm_out_b"]) if affine else (None, None)
    t = f.layer_norm(t, (H,), *norm, 1e-5)
    return mm(t * (torch.sigmoid(mm(xn, d["out_gate_w"])) if gate else 1.0), d["out_proj_w"])


def test_tolerance_admits_half_precision_and_rejects_structural_mistakes():
    d = inputs(tiny(48, 1, 64, "cauchy", True, hidden=32), seed=5)
    ref = trimul_reference(d)
    for precision in (torch.float16, torch.bfloat16):
        check_output(variant(d, precision=precision), ref)
    for mistake in ({"incoming": True}, {"mask": False}, {"gate": False}, {"affine": False}):
        with pytest.raises(ValueError, match="outside"):
            check_output(variant(d, **mistake), ref)


def test_geometric_mean_of_runtimes():
    assert geometric_mean([100.0, 400.0]) == pytest.approx(200.0)
    with pytest.raises(ValueError):
        geometric_mean([100.0, 0.0])


def test_benchmark_shapes_cover_the_stated_ranges():
    assert {s["seqlen"] for s in BENCHMARK_SHAPES} >= {256, 1024}
    assert {s["dim"] for s in BENCHMARK_SHAPES} >= {128, 384}
    assert {s["hidden"] for s in BENCHMARK_SHAPES} == {128}


# --- the initial candidate and the runner ---
@pytest.mark.parametrize("shape", TINY)
def test_initial_candidate_matches_the_reference_in_process(shape):
    d = inputs(shape, seed=7)
    check_output(initial_kernel({k: v.clone() for k, v in d.items()}), trimul_reference(d))


def test_initial_candidate_passes_the_runner_in_the_sandbox_on_cpu():
    verdict = run_candidate(INITIAL, "cpu", tests=TINY, benchmarks=TINY[:1], timing=False,
                            wall_s=60)
    assert verdict["valid"], verdict["message"]
    assert verdict["geomean_us"] is None  # no timing without CUDA


HOSTILE = {
    "patches the checker": (HONEST + """
import sys
torch.allclose = lambda *a, **k: True
sys.modules["trimul_verifier"].check_output = lambda *a, **k: None
def custom_kernel(data):
    return torch.zeros_like(data["x"])
""", "modified"),
    "patches the timer": (HONEST + """
torch.cuda.Event.elapsed_time = lambda self, end: 0.001
torch.cuda.synchronize = lambda *a, **k: None
custom_kernel = honest_kernel
""", "elapsed_time"),
    "returns a cached output": (HONEST + """
_cache = {}
def custom_kernel(data):
    key = tuple(data["x"].shape)
    if key not in _cache:
        _cache[key] = honest_kernel(data)
    return _cache[key]
""", "wrong output"),
    "looks for the reference in memory": ("""
import gc, torch
def custom_kernel(data):
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.shape == data["x"].shape \\
                and obj is not data["x"]:
            return obj.clone()
    return torch.zeros_like(data["x"])
""", "wrong output"),
    "raises": ("def custom_kernel(data):\n    raise RuntimeError('boom')\n",
               "custom_kernel raised RuntimeError: boom"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_candidates_are_rejected_by_the_sandboxed_runner(name):
    source, why = HOSTILE[name]
    verdict = run_candidate(source, "cpu", tests=TINY, benchmarks=(), timing=False, wall_s=60)
    assert not verdict["valid"] and why in verdict["message"], verdict["message"]


def test_runner_snapshot_catches_a_patched_torch_function(monkeypatch):
    reference = runner._load("trimul_reference", (HERE / "reference.py").read_text())
    verifier = runner._load("trimul_verifier", (HERE / "verifier.py").read_text())
    t = runner._snapshot(torch, reference, verifier, "cpu", timing=False)
    t.verify_untouched("now")
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    with pytest.raises(runner.Rejected, match="modified torch.allclose"):
        t.verify_untouched("now")


# --- the env without CUDA ---
@pytest.mark.skipif(not NO_GPU, reason="this machine has CUDA")
def test_make_env_without_cuda_raises_one_line():
    with pytest.raises(EnvError) as err:
        make_env("trimul")
    assert str(err.value) == NO_CUDA


@pytest.mark.skipif(not NO_GPU, reason="this machine has CUDA")
@pytest.mark.parametrize("args", [["score", "trimul", "{file}"], ["discover", "--env", "trimul"]])
def test_cli_without_cuda_exits_1_with_one_line(tmp_path, args):
    file = tmp_path / "x.py"
    file.write_text(INITIAL)
    result = CliRunner().invoke(main, [a.format(file=file) for a in args])
    assert result.exit_code == 1
    assert NO_CUDA in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_harness_envs_lists_trimul():
    result = CliRunner().invoke(main, ["envs"])
    assert result.exit_code == 0 and "trimul" in result.output


class CpuTriMul(TriMulEnv):
    """The env's prompt and files without the CUDA check (no scoring)."""

    def __init__(self):
        Env.__init__(self)
        self.wall_s = TIME_LIMIT_S


def test_prompt_shows_the_program_its_runtime_and_the_rules():
    env = CpuTriMul()
    prompt = env.prompt(env.initial_solutions()[0], 1234.5, "program")
    assert "def custom_kernel" in prompt and "1234.5 µs" in prompt
    assert "Triton" in prompt and "300 seconds" in prompt and "N1024" in prompt
    assert env.reward(1000.0) == pytest.approx(1.0)
    assert env.load_file("x", ".py") == ("x", "program")
    with pytest.raises(ValueError):
        env.load_file("{}", ".json")


# --- on the GPU ---
@pytest.mark.gpu
def test_initial_candidate_scores_a_finite_runtime_on_cuda():
    env = make_env("trimul")
    result = env.score(env.initial_solutions()[0])
    assert result.valid, result.message
    assert 0 < result.raw_score < math.inf
    assert result.reward == pytest.approx(1000.0 / result.raw_score)
    assert len(result.artifacts["runtimes_us"]) == len(BENCHMARK_SHAPES)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["patches the timer", "returns a cached output"])
def test_hostile_candidates_are_rejected_on_cuda(name):
    source, why = HOSTILE[name]
    result = make_env("trimul").score(source)
    assert not result.valid and why in result.message, result.message


@pytest.mark.gpu
def test_a_candidate_caching_by_shape_only_after_the_correctness_phase_is_caught_in_timing():
    honest_calls = 2 * len(TEST_SHAPES) + runner.WARMUP  # correctness, then warm-up
    source = HONEST + f"""
_calls = [0]
_cache = {{}}
def custom_kernel(data):
    _calls[0] += 1
    key = tuple(data["x"].shape)
    if _calls[0] <= {honest_calls} or key not in _cache:  # honest until the timed calls
        _cache[key] = honest_kernel(data)
    return _cache[key]
"""
    result = make_env("trimul").score(source)
    assert not result.valid and "timed call" in result.message, result.message


TRITON_GATE = HONEST.replace("return (t * torch.sigmoid(out_gate))",
                             "return gate(t, out_gate)") + """
import triton
import triton.language as tl


@triton.jit
def _gate_kernel(t_ptr, g_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    t = tl.load(t_ptr + offs, mask=inside)
    g = tl.load(g_ptr + offs, mask=inside)
    tl.store(out_ptr + offs, t * tl.sigmoid(g), mask=inside)


def gate(t, g):
    t, g = t.contiguous(), g.contiguous()
    out = torch.empty_like(t)
    _gate_kernel[(triton.cdiv(t.numel(), 1024),)](t, g, out, t.numel(), BLOCK=1024)
    return out


custom_kernel = honest_kernel
"""

COMPILED = HONEST + """
custom_kernel = torch.compile(honest_kernel, dynamic=True)
"""


@pytest.mark.gpu
@pytest.mark.parametrize("source", [TRITON_GATE, COMPILED], ids=["triton", "torch.compile"])
def test_triton_and_torch_compile_candidates_run_in_the_sandbox_on_cuda(source):
    assert "gate(t, out_gate)" in TRITON_GATE  # the replacement above took
    result = make_env("trimul").score(source)
    assert result.valid, result.message

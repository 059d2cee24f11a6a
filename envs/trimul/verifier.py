"""TriMul's verifier: the shapes, the tolerance, the output check and the score. Pure.

Correctness: on every TEST_SHAPE and on each BENCHMARK_SHAPE, the candidate's output must
satisfy |out - ref| <= ATOL + RTOL * |ref| elementwise (torch.allclose's rule) against the
fp32 reference (`reference.trimul_reference`). Why RTOL = ATOL = 2e-2: the reference is fp32
but a fast kernel computes the five projections and the k-contraction in fp16 or bf16 with fp32
accumulation. Measured on CPU (N = 128, C = 384 and N = 256, C = 128, masked; 2-6 M
outputs of magnitude up to 3): fp16 operands in every stage err by at most 2.9e-3, far
inside; bf16 operands by 1.7e-2 to 2.3e-2, inside only thanks to the rtol part, by 4e-3 to
5e-3 (borderline on the largest shapes; the prompt says so). A structural mistake moves
outputs by order 1: the incoming instead of the outgoing contraction errs by up to 4.3 (0.6
on average); a dropped mask, gate or norm affine fails too (tests/test_trimul.py). A tighter
bound would reject bf16 kernels outright.

Score: the median runtime per benchmark shape (µs, of many timed calls), combined by the
geometric mean across shapes (each shape counts the same, whatever its size). Raw score in
µs, lower is better; the env's reward is 1000 / µs.

This file is also loaded, as text, by the runner inside the sandbox: it imports nothing, and
`check_output` uses only tensor methods.
"""

from __future__ import annotations

import math

RTOL = 2e-2
ATOL = 2e-2
HIDDEN = 128


def _shape(seqlen: int, bs: int, dim: int, distribution: str, with_mask: bool) -> dict:
    return {"seqlen": seqlen, "bs": bs, "dim": dim, "hidden": HIDDEN,
            "distribution": distribution, "with_mask": with_mask}


# Correctness only: small, odd sizes (48, 100) catch kernels that assume multiples of a tile.
TEST_SHAPES = (
    _shape(32, 1, 128, "normal", False),
    _shape(32, 2, 128, "normal", True),
    _shape(48, 1, 256, "cauchy", False),
    _shape(64, 2, 128, "cauchy", True),
    _shape(100, 1, 128, "normal", True),
    _shape(128, 1, 384, "normal", False),
    _shape(128, 2, 128, "cauchy", True),
    _shape(256, 1, 128, "normal", True),
)

# Timed (and checked): sequence lengths 256-1024, dims 128-384, hidden 128.
BENCHMARK_SHAPES = (
    _shape(256, 2, 128, "normal", False),
    _shape(256, 2, 384, "normal", True),
    _shape(512, 1, 128, "normal", False),
    _shape(768, 1, 128, "cauchy", False),
    _shape(768, 1, 384, "normal", True),
    _shape(1024, 1, 128, "cauchy", False),
    _shape(1024, 1, 384, "normal", False),
)


def shape_name(shape: dict) -> str:
    """'N256 B2 C128 H128 normal masked' — one line per shape in messages and artifacts."""
    mask = " masked" if shape["with_mask"] else ""
    return (f"N{shape['seqlen']} B{shape['bs']} C{shape['dim']} H{shape['hidden']} "
            f"{shape['distribution']}{mask}")


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        flat, i = divmod(flat, size)
        index.append(i)
    return tuple(reversed(index))


def check_output(out, ref, rtol: float = RTOL, atol: float = ATOL) -> None:
    """None when `out` matches the reference output `ref` (same tensor type, shape, dtype and
    device; finite; |out - ref| <= atol + rtol |ref| everywhere), else ValueError("why")."""
    if type(out) is not type(ref):
        raise ValueError(f"custom_kernel must return a {type(ref).__name__}, "
                         f"got {type(out).__name__}")
    if tuple(out.shape) != tuple(ref.shape):
        raise ValueError(f"output shape {tuple(out.shape)}, expected {tuple(ref.shape)}")
    if out.dtype != ref.dtype:
        raise ValueError(f"output dtype {out.dtype}, expected {ref.dtype}")
    if out.device != ref.device:
        raise ValueError(f"output on {out.device}, expected {ref.device}")
    finite = out.isfinite()
    if not bool(finite.all()):
        where = _unravel(int((~finite).flatten().int().argmax()), tuple(out.shape))
        raise ValueError(f"{int((~finite).sum())} non-finite output values, the first at "
                         f"{where}: {float(out[where])}")
    err = (out - ref).abs()
    excess = (err - (atol + rtol * ref.abs())).flatten()
    worst = int(excess.argmax())
    if float(excess[worst]) > 0:
        where = _unravel(worst, tuple(out.shape))
        got, want, abs_err = float(out[where]), float(ref[where]), float(err[where])
        n_bad = int((excess > 0).sum())
        raise ValueError(
            f"{n_bad} of {out.numel()} values outside rtol={rtol:g}, atol={atol:g}; worst at "
            f"{where}: got {got:.6g}, expected {want:.6g} (abs err {abs_err:.3g}, "
            f"rel err {abs_err / max(abs(want), 1e-30):.3g})")


def geometric_mean(values) -> float:
    """The raw score from the per-shape medians (µs); ValueError unless all are positive."""
    values = list(values)
    if not values or not all(v > 0 and math.isfinite(v) for v in values):
        raise ValueError(f"runtimes must be positive and finite, got {values}")
    return math.exp(sum(math.log(v) for v in values) / len(values))

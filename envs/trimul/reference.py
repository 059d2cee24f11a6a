"""TriMul, the outgoing triangle multiplicative update (AlphaFold3), as the fp32 reference.

For a pair representation x (B, N, N, C) and a mask (B, N, N):
    xn    = LayerNorm_C(x)                                   # affine: norm_in_w, norm_in_b
    left  = (xn W_l^T) * sigmoid(xn W_lg^T) * mask           # (B, N, N, H)
    right = (xn W_r^T) * sigmoid(xn W_rg^T) * mask           # (B, N, N, H)
    t     = sum_k left[b, i, k, h] * right[b, j, k, h]       # "outgoing": bikh,bjkh->bijh
    y     = ((LayerNorm_H(t) * sigmoid(xn W_og^T)) W_o^T)    # (B, N, N, C)
Projections have no bias. A candidate's `custom_kernel(data)` receives the dict that
`make_inputs` returns (fresh copies) and returns y as a float32 tensor.

This file is also loaded, as text, by the runner inside the sandbox: it imports only torch.
"""

from __future__ import annotations

import math

import torch

LAYER_NORM_EPS = 1e-5
PROJECTIONS = ("left_proj_w", "right_proj_w", "left_gate_w", "right_gate_w", "out_gate_w")


def make_inputs(seqlen: int, bs: int, dim: int, hidden: int, distribution: str = "normal",
                with_mask: bool = False, seed: int = 0, device: str = "cpu") -> dict:
    """The data dict a candidate receives, all float32 tensors on `device`, a pure function of
    the arguments (on one device): x, mask (0/1; all ones without a mask) and the weights.

    `cauchy` draws x from Cauchy(0, 2), heavy-tailed, so that a kernel that is only right for
    well-scaled inputs (e.g. one that skips the input layer norm's statistics) fails."""
    if distribution not in ("normal", "cauchy"):
        raise ValueError(f"distribution must be 'normal' or 'cauchy', got {distribution!r}")
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, device=device, dtype=torch.float32)

    x = torch.empty((bs, seqlen, seqlen, dim), device=device, dtype=torch.float32)
    if distribution == "normal":
        x.normal_(generator=gen)
    else:
        x.cauchy_(median=0.0, sigma=2.0, generator=gen)
    if with_mask:
        mask = torch.randint(0, 2, (bs, seqlen, seqlen), generator=gen, device=device)
        mask = mask.to(torch.float32)
    else:
        mask = torch.ones((bs, seqlen, seqlen), device=device, dtype=torch.float32)
    data = {"x": x, "mask": mask}
    for name in PROJECTIONS:  # (H, C), scaled like a default linear layer
        data[name] = randn(hidden, dim) / math.sqrt(dim)
    data["out_proj_w"] = randn(dim, hidden) / math.sqrt(hidden)  # (C, H)
    # affine norms away from (1, 0), so a kernel that ignores them is wrong
    data["norm_in_w"], data["norm_in_b"] = 1 + 0.1 * randn(dim), 0.1 * randn(dim)
    data["norm_out_w"], data["norm_out_b"] = 1 + 0.1 * randn(hidden), 0.1 * randn(hidden)
    return data


def trimul_reference(data: dict) -> torch.Tensor:
    """The outgoing TriMul forward in fp32 (B, N, N, C). On CUDA, call it under
    `fp32_matmuls()` so that no TF32 creeps into the reference."""
    f = torch.nn.functional
    x, mask = data["x"].float(), data["mask"].float()
    dim, hidden = x.shape[-1], data["left_proj_w"].shape[0]
    xn = f.layer_norm(x, (dim,), data["norm_in_w"].float(), data["norm_in_b"].float(),
                      LAYER_NORM_EPS)

    def proj(name: str) -> torch.Tensor:
        return torch.matmul(xn, data[name].float().t())  # (B, N, N, H)

    m = mask.unsqueeze(-1)
    left = proj("left_proj_w") * torch.sigmoid(proj("left_gate_w")) * m
    right = proj("right_proj_w") * torch.sigmoid(proj("right_gate_w")) * m
    # t[b, i, j, h] = sum_k left[b, i, k, h] * right[b, j, k, h], as one batched matmul over
    # (b, h): (B, H, N_i, K) @ (B, H, K, N_j)
    t = torch.matmul(left.permute(0, 3, 1, 2), right.permute(0, 3, 2, 1)).permute(0, 2, 3, 1)
    tn = f.layer_norm(t, (hidden,), data["norm_out_w"].float(), data["norm_out_b"].float(),
                      LAYER_NORM_EPS)
    gated = tn * torch.sigmoid(proj("out_gate_w"))
    return torch.matmul(gated, data["out_proj_w"].float().t())


class fp32_matmuls:  # noqa: N801 (used like a function: `with fp32_matmuls():`)
    """Full-precision fp32 matmuls inside the block (no TF32), whatever was set outside."""

    def __enter__(self):
        self._saved = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")

    def __exit__(self, *exc):
        torch.set_float32_matmul_precision(self._saved)

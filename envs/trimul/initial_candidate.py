"""TriMul (outgoing), plain torch in fp32: the five projections as one matmul, then einsum."""

import torch
import torch.nn.functional as F


def custom_kernel(data: dict) -> torch.Tensor:
    x, mask = data["x"], data["mask"]  # (B, N, N, C), (B, N, N)
    dim, hidden = x.shape[-1], data["left_proj_w"].shape[0]
    xn = F.layer_norm(x, (dim,), data["norm_in_w"], data["norm_in_b"], 1e-5)
    weights = torch.cat([data["left_proj_w"], data["right_proj_w"], data["left_gate_w"],
                         data["right_gate_w"], data["out_gate_w"]])  # (5H, C)
    left, right, left_gate, right_gate, out_gate = (xn @ weights.t()).split(hidden, dim=-1)
    m = mask.unsqueeze(-1)
    left = left * torch.sigmoid(left_gate) * m
    right = right * torch.sigmoid(right_gate) * m
    t = torch.einsum("bikh,bjkh->bijh", left, right)  # (B, N, N, H)
    t = F.layer_norm(t, (hidden,), data["norm_out_w"], data["norm_out_b"], 1e-5)
    return (t * torch.sigmoid(out_gate)) @ data["out_proj_w"].t()  # (B, N, N, C)

"""Log-probs of chosen tokens without materialising the full vocabulary for every token.

`token_logprobs(hidden_ND, head, targets_N)` = log_softmax(head(hidden))[targets] computed in
chunks of tokens. Each chunk's logits (chunk x V, fp32) are built, reduced to one number per
token and freed; the backward recomputes them chunk by chunk (activation checkpointing), so
peak memory is O(chunk x V) instead of O(N x V) — at 64 x 1024 tokens and SmolLM2's 49k
vocabulary the naive fp32 copy alone is 12.9 GB. Exactly the naive math, in the same order.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

DEFAULT_CHUNK = 1024


def _chunk_logprobs(hidden_CD: torch.Tensor, weight_VD: torch.Tensor,
                    targets_C: torch.Tensor) -> torch.Tensor:
    logits_CV = hidden_CD @ weight_VD.T
    logits_CV = logits_CV.to(torch.promote_types(logits_CV.dtype, torch.float32))  # bf16 -> fp32
    picked_C = logits_CV.gather(-1, targets_C[:, None])[:, 0]
    return picked_C - torch.logsumexp(logits_CV, dim=-1)


def token_logprobs(hidden_ND: torch.Tensor, head: torch.nn.Linear, targets_N: torch.Tensor,
                   chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """log p(target_n | hidden_n) for each of N positions, in fp32, chunked over N.

    `head` is the model's output embedding (a bias-free Linear, as in Llama-style models).
    """
    if head.bias is not None:
        raise ValueError("token_logprobs expects a bias-free output layer")
    weight_VD = head.weight
    pieces = []
    for start in range(0, hidden_ND.shape[0], chunk):
        h_CD = hidden_ND[start:start + chunk]
        t_C = targets_N[start:start + chunk]
        if torch.is_grad_enabled() and (h_CD.requires_grad or weight_VD.requires_grad):
            pieces.append(checkpoint(_chunk_logprobs, h_CD, weight_VD, t_C, use_reentrant=False))
        else:
            pieces.append(_chunk_logprobs(h_CD, weight_VD, t_C))
    return torch.cat(pieces) if pieces else hidden_ND.new_zeros(0, dtype=torch.float32)

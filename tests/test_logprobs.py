"""Chunked token log-probs equal the naive full-vocabulary computation, forward and backward."""

import pytest
import torch

from harness.loop.logprobs import token_logprobs


def naive(hidden_ND, head, targets_N):
    return torch.log_softmax(head(hidden_ND), -1).gather(-1, targets_N[:, None])[:, 0]


@pytest.mark.parametrize("n, chunk", [(1, 4), (7, 3), (16, 16), (33, 8)])
def test_chunked_logprobs_match_the_naive_forward_and_gradients(n, chunk):
    torch.manual_seed(n)
    head = torch.nn.Linear(12, 50, bias=False, dtype=torch.float64)
    hidden = torch.randn(n, 12, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (n,))
    weights = torch.randn(n, dtype=torch.float64)

    expected = naive(hidden, head, targets)
    grads_expected = torch.autograd.grad((expected * weights).sum(), [hidden, head.weight])
    got = token_logprobs(hidden, head, targets, chunk=chunk)
    grads_got = torch.autograd.grad((got * weights).sum(), [hidden, head.weight])

    assert torch.allclose(got, expected, atol=1e-12)
    for g, e in zip(grads_got, grads_expected, strict=True):
        assert torch.allclose(g, e, atol=1e-12)


def test_no_grad_path_and_empty_input():
    head = torch.nn.Linear(4, 9, bias=False)
    with torch.no_grad():
        out = token_logprobs(torch.randn(5, 4), head, torch.zeros(5, dtype=torch.long), chunk=2)
    assert out.shape == (5,) and (out <= 0).all()
    assert token_logprobs(torch.randn(0, 4), head, torch.zeros(0, dtype=torch.long)).numel() == 0

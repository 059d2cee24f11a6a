"""Shared fixtures: reports go to a temporary folder; the tiny model is loaded once."""

from __future__ import annotations

import os
import signal

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# A suite started in the background of a non-interactive shell (`cmd &`, nohup) inherits
# SIGINT ignored, and so would every child: the Ctrl-C tests would then test nothing. A
# Python handler here becomes the default action again in the children we exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def reports_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_REPORTS_DIR", str(tmp_path / "reports"))
    return tmp_path / "reports"


@pytest.fixture(scope="module")
def one_torch_thread():
    """The 2 CPU cores are shared: one torch thread avoids spin-waiting (3x faster here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def claude(monkeypatch):
    """The Anthropic SDK pointed at a local Messages-API stand-in on 127.0.0.1 (no mocks)."""
    from messages_server import MessagesServer

    with MessagesServer() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("HARNESS_REVIEWER_MODEL", "claude-test-model")
        yield server


@pytest.fixture()
def tiny_policy():
    """A fresh tiny random model (no LoRA yet) on CPU."""
    from harness.loop.model import load_policy

    return load_policy("tiny", "cpu")


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA: skipped, with the reason, on a machine without it."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the device machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

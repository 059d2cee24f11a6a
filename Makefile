# The two commands a new user needs (see README.md).
PY ?= python3

.PHONY: setup run test lint

setup:
	bash scripts/setup.sh

# The main job: TTT-Discover on the Erdős minimum overlap problem with the embedded SmolLM2.
run: setup
	$(PY) -m harness discover --env erdos

test: setup
	$(PY) -m pytest -q

lint:
	$(PY) -m ruff check harness envs tests benchmarks

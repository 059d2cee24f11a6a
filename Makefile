# The two commands a new user needs (see README.md).
PY ?= python3

.PHONY: setup run test lint

setup:
	bash scripts/setup.sh

# The main job: an experiment with the embedded SmolLM2 on Erdős minimum overlap, three
# entropic-temperature arms of the TTT-Discover loop, ending in a report.
run: setup
	$(PY) -m harness experiment "tune entropic temperature on erdos"

test: setup
	$(PY) -m pytest -q

lint:
	$(PY) -m ruff check harness envs tests benchmarks

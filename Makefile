# Everyday targets. `make demo` and `make test` set everything up themselves on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE = 1
export PYANNOTE_METRICS_ENABLED = 0
export HF_HUB_DISABLE_TELEMETRY = 1
export RAY_USAGE_STATS_ENABLED = 0
export TOKENIZERS_PARALLELISM = false

.PHONY: setup demo demo-ablate explore test test-fast lint format bench lock clean

setup:
	@VENV=$(VENV) bash scripts/setup.sh

demo: setup  ## build the synthetic demo archive and run every pipeline on it (≤ 10 min on 2 cores)
	$(PY) -m curate.cli demo --out demo_out

demo-ablate: setup  ## tiny two-cell ablation on the demo run, 2 seeds per cell, table with intervals (after `make demo`)
	$(PY) -m curate.cli ablate configs/ablations/tiny-demo.yaml --out demo_out/ablation --runner local --threads 1

explore: setup  ## the page over the demo run (after `make demo`): see, hear and filter its segments and cuts
	$(PY) -m curate.cli explore demo_out/runs/demo

test: setup  ## the full test suite (what CI runs): lint, format check, pytest
	$(PY) -m ruff check curate tests benchmarks
	$(PY) -m ruff format --check curate tests benchmarks
	$(PY) -m pytest -q

test-fast: setup  ## skip tests marked slow (under 2 minutes on 2 cores)
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check curate tests benchmarks
	$(PY) -m ruff format --check curate tests benchmarks

format: setup
	$(PY) -m ruff format curate tests benchmarks
	$(PY) -m ruff check --fix curate tests benchmarks

bench: setup  ## throughput and scale benchmarks (not part of the tests)
	$(PY) -m benchmarks.run_all

lock:  ## regenerate the hashed locks (requirements.lock, requirements-dev.lock) from pyproject.toml with uv
	bash scripts/lock.sh

clean:
	rm -rf demo_out .pytest_cache .ruff_cache

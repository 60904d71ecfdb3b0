# Everyday targets. `make demo` and `make test` set everything up themselves on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE = 1
export PYANNOTE_METRICS_ENABLED = 0
export HF_HUB_DISABLE_TELEMETRY = 1
export RAY_USAGE_STATS_ENABLED = 0
export TOKENIZERS_PARALLELISM = false

.PHONY: setup demo demo-ablate test test-fast lint format bench lock clean

setup:
	@VENV=$(VENV) bash scripts/setup.sh

demo: setup  ## build the synthetic demo archive and run every pipeline on it (≤ 10 min on 2 cores)
	$(PY) -m curate.cli demo --out demo_out

demo-ablate: setup  ## tiny two-cell ablation on the demo run (after `make demo`; ≤ 5 min on 2 cores)
	$(PY) -m curate.cli ablate configs/ablations/tiny-demo.yaml --out demo_out/ablation --runner local --threads 1

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

lock:  ## regenerate requirements.lock from pyproject.toml in a throw-away venv
	rm -rf /tmp/curate-lock && python3.11 -m venv /tmp/curate-lock
	/tmp/curate-lock/bin/pip install -q "setuptools<81" && /tmp/curate-lock/bin/pip install -q ".[all,dev]"
	{ echo "# Pinned, reproducible install of curate's full stack (Python 3.11, x86_64)."; \
	  echo "# Regenerate with: make lock"; echo "setuptools==80.10.2"; \
	  /tmp/curate-lock/bin/pip freeze --exclude-editable | grep -v '^curate'; } > requirements.lock

clean:
	rm -rf demo_out .pytest_cache .ruff_cache

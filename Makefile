# Everyday entry points. `make serve` and `make test` work on a fresh machine: they create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUNDLE ?= bundles/default
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: setup test lint serve bundle bench bench-quick clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned to the local CPU wheel; pip (not uv/poetry) resolves it.
	$(PY) -m pip install --quiet -e ".[export,serve,dev,ray]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/yamllint --strict -c deploy/.yamllint deploy

bundle: setup
	@if [ ! -f $(BUNDLE)/manifest.json ]; then \
		test -f runs/default/model.json || $(VENV)/bin/vit-export train --dataset digits --out runs/default; \
		$(VENV)/bin/vit-export export runs/default --out $(BUNDLE) --int8; \
	fi

serve: bundle
	VIT_BUNDLE=$(BUNDLE) $(VENV)/bin/vit-serve --host $(HOST) --port $(PORT)

# Benchmarks (docs/benchmarks.md): engine ceiling, the service over HTTP, peer servers, hardware limit.
# Peers install into .bench/venvs on first use; the full run takes < 20 min on 2 cores.
bench: setup
	$(PY) -m bench

bench-quick: setup
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

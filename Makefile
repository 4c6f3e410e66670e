# Two commands on a fresh machine (each idempotent; each creates .venv when needed):
#   make app    install everything and start the demo on the offline default model
#   make test   install everything (incl. Debian's chromium for browser tests) and run all tests
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: app test chromium lint readme results-table screenshots

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	# torchattacks (a test-only oracle) pins an old `requests`; its code needs none of its pins.
	$(PY) -m pip install --quiet --no-deps torchattacks==3.5.1
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

app: $(STAMP)
	# The primer asks the server to run app.py once, so the default network loads before the first visitor.
	$(PY) -m scripts.prime_app & $(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --browser.gatherUsageStats false

chromium:
	@bash scripts/install_chromium.sh

test: $(STAMP) chromium
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Every generated block of README.md and research/README.md (findings, CLI reference, the lab's tables).
readme: $(STAMP)
	$(PY) -m scripts.update_readme

results-table: $(STAMP)
	$(PY) -m scripts.results_table

screenshots: $(STAMP) chromium
	$(PY) -m scripts.screenshots

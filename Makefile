# Two commands on a fresh machine: `make run` (the dashboard on sample_project/, local target)
# and `make test` (lint, types, the whole test suite). Both set up what they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest base-image bench clean compile

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# compat mode: a plain path entry, no import hook (keeps `labdeck` start-up fast)
	$(PY) -m pip install -q -e '.[dev,samples]' --config-settings editable_mode=compat
	touch $(STAMP)

# Byte-compile labdeck as an installed package would be (where PYTHONDONTWRITEBYTECODE is set,
# every start would compile the sources again: ~50 ms of each CLI call). Stale files only.
compile: $(STAMP)
	@$(PY) -m compileall -q backends tui

sample_project/data/CATelcoCustomerChurnTrainingSample.csv: $(STAMP)
	$(PY) sample_project/generate_churn_data.py

run: compile sample_project/data/CATelcoCustomerChurnTrainingSample.csv
	@cd sample_project && if [ -t 0 ] && [ -t 1 ]; then \
	  ../$(VENV)/bin/labdeck ui -c local --submit CATelcoCustomerChurnModelingWithoutDprep.py; \
	else \
	  ../$(VENV)/bin/labdeck submit -c local CATelcoCustomerChurnModelingWithoutDprep.py; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: compile
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test: lint typecheck pytest

base-image:
	bash scripts/build-base-image.sh

bench: compile
	cd bench && for b in bench_*.py; do ../$(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache sample_project/.labdeck sample_project/data

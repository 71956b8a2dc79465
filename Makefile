# The README's two commands: `make demo` (set up and run the main job) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench

$(BIN)/sandwich: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/sandwich

demo: setup
	$(BIN)/sandwich demo --out demo-report

test: setup
	$(BIN)/python -m pytest -n 2 --durations=15 tests

bench: setup
	$(BIN)/sandwich bench proxy --codec jpeg --subsampling 420 --json bench-proxy-420.json

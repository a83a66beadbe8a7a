# reelpick: every target creates the virtualenv when missing, installs pinned deps, then runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ../shared/data/ml-100k

.PHONY: install demo test test-all bench lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,oracle,ray]'
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python -c constraints.txt obp
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/reelpick demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_baselines.py --data $(DATA) --out BENCHMARKS.md
	$(BIN)/python benchmarks/bench_als_speed.py --data $(DATA) --out BENCHMARKS.md

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

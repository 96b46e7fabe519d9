# vaelab: `make train` trains a β-VAE on procedural dSprites, `make test` runs the tests.
# Both create the virtual environment first when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

SWEEP  ?=

.PHONY: install train test report bench mutants lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(PY) src/train.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

report: $(STAMP)
	$(PY) src/report.py $(SWEEP)

bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py $(ARGS)

# Mutation testing of objectives/, metrics/, schedules, the module's steps, the data order and checkpoints
# ([tool.mutmut] in pyproject.toml); resumable. MUTANTS narrows it, e.g. MUTANTS='vaelab.objectives*'.
MUTANTS ?=
mutants: $(STAMP)
	$(VENV)/bin/mutmut run $(MUTANTS)
	$(PY) tests/mutation_score.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests
	$(VENV)/bin/ruff format src tests

clean:
	rm -rf outputs mutants .pytest_cache .ruff_cache src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# vaelab: `make train` trains a β-VAE on procedural dSprites, `make test` runs the tests.
# Both create the virtual environment first when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

SWEEP  ?=

.PHONY: install train test test-fast tutorial report reproduce compare bench gpu-check mutants lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(PY) src/train.py $(ARGS)

# On every core (pytest-xdist; a module's tests stay on one worker, so its fixtures run once).
test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadscope $(ARGS)

# The unit tests only (no training runs, sweeps or installs): for quick iterations.
test-fast: $(STAMP)
	$(PY) -m pytest -n auto --dist loadscope -m "not programs" $(ARGS)

# The MIT 6.S191 VAE tutorial walked through: runs each section's experiment with vaelab's own
# commands and writes docs/tutorial.md with their figures (a few minutes on a CPU).
tutorial: $(STAMP)
	$(PY) docs/tutorial.py $(ARGS)

report: $(STAMP)
	@test -n "$(SWEEP)" || { echo "make report needs the sweep's folder: make report SWEEP=outputs/multirun/<date>/<time>" >&2; exit 2; }
	$(PY) src/report.py $(SWEEP)

# Locatello et al.'s dSprites grid for the β question, beside the published values
# (conf/experiment/reproduce_dsprites.yaml: 21 jobs of 150k-300k steps, for a GPU). Run again to
# resume; ARGS trains a piece, e.g. ARGS="reproduce=beta_vae_b4 seed=0"; REPRODUCE_DIR=... puts
# the sweep and its report elsewhere. The report is written
# whatever the jobs' status; the exit status is the sweep's.
REPRODUCE_DIR ?= outputs/reproduce/dsprites
reproduce: $(STAMP)
	$(PY) src/train.py -m experiment=reproduce_dsprites hydra.sweep.dir=$(REPRODUCE_DIR) $(ARGS); \
	status=$$?; \
	$(PY) src/report.py $(REPRODUCE_DIR) && exit $$status

# 2018 vs 2024 on one network: β-VAE, β-TCVAE, FactorVAE, Ada-GVAE, QLAE and Tripod
# (conf/experiment/compare_2024.yaml; 300k steps each, for a GPU: ARGS="trainer.max_steps=..."
# for a shorter run). Reported by model, whatever the jobs' status; the exit status is the sweep's.
COMPARE_DIR ?= outputs/compare_2024
compare: $(STAMP)
	$(PY) src/train.py -m experiment=compare_2024 hydra.sweep.dir=$(COMPARE_DIR) $(ARGS); \
	status=$$?; \
	$(PY) src/report.py $(COMPARE_DIR) --by model && exit $$status

bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py $(ARGS)

# Here: gathers the wheels the GPU machine lacks into .whl/ and prints the command to run there.
# On a GPU machine (no venv there, its python3): the GPU tests, the GPU bench, the metric suite.
gpu-check:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) benchmarks/gpu_check.py $(ARGS)

# Mutation testing of objectives/, metrics/, schedules, the module's steps, the data order and checkpoints
# ([tool.mutmut] in pyproject.toml); resumable. MUTANTS narrows it, e.g. MUTANTS='vaelab.objectives*'.
# A first pass runs each mutant's tests of at most MUTANTS_QUICK seconds; its survivors then run
# against all their tests, so the results are those of one full run.
MUTANTS ?=
MUTANTS_QUICK ?= 3
mutants: $(STAMP)
	VAELAB_MUTANTS_QUICK=$(MUTANTS_QUICK) $(VENV)/bin/mutmut run $(MUTANTS)
	if [ -s mutants/quick-survivors.txt ]; then \
	  $(VENV)/bin/mutmut run $$(sort -u mutants/quick-survivors.txt) && rm mutants/quick-survivors.txt; fi
	$(PY) tests/mutation_score.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests
	$(VENV)/bin/ruff format src tests

clean:
	rm -rf outputs mutants build .pytest_cache .ruff_cache src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

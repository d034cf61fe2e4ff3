# pqlab — every target sets up what it needs. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# JupyterLab refuses to start as root (containers, CI) without --allow-root.
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_FLAGS ?=
PYTEST_FLAGS ?=
# Python's own default: every process pqlab starts (notebook kernels, sweep and worker
# processes, the CLI) reads pqlab's compiled modules from __pycache__ (git-ignored)
# instead of compiling them again, ~0.8 s each here, and pytest keeps its rewritten
# test modules. A machine that sets PYTHONDONTWRITEBYTECODE=1 would forbid the cache.
unexport PYTHONDONTWRITEBYTECODE

.DEFAULT_GOAL := help
.PHONY: help setup run quick full adr poc test lint bench lab clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP) ## create .venv, install pqlab with its dev tools and the `pqlab` Jupyter kernel

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name pqlab --display-name "Python (pqlab)"
	touch $(STAMP)

run: setup ## the main job: the notebooks in a batch, default profile (data/, figures/; docs/adr/ untouched)
	$(BIN)/python -m pqlab batch --profile default

quick: setup ## the quick profile (CI, smoke check) into out/quick/
	$(BIN)/python -m pqlab batch --profile quick --output out/quick

full: setup ## the full study (30-40 min): task counts to 1,000,000, 1-32 workers
	$(BIN)/python -m pqlab batch --profile full

adr: setup ## publish the latest run's ADR: rewrite docs/adr/0001-request-queue.md
	$(BIN)/python -m pqlab adr

poc: setup ## the POC's console report on every queue and scenario (10,000 tasks)
	$(BIN)/python -m pqlab poc

test: setup ## run the test suite (two workers; PYTEST_FLAGS='-k name' adds options)
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder $(PYTEST_FLAGS)

lint: setup ## ruff over the package and the tests
	$(BIN)/ruff check pqlab tests

bench: setup ## speed claims as side-by-side ratios (python -m pqlab bench)
	$(BIN)/python -m pqlab bench

lab: setup ## open the notebooks in JupyterLab (LAB_FLAGS='--no-browser --port 8890' adds options)
	$(BIN)/jupyter lab $(LAB_ROOT_FLAG) $(LAB_FLAGS) notebooks

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

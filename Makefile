# PneumoLab: `make` sets up .venv and runs every notebook under PROFILE (default smoke).
# Data location is configuration, not set here: export PNEUMOLAB_DATA=/path/to/data
# (the folder holding medmnist/ and kermany/; see pneumolib/data.py).

PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= smoke

BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(wildcard notebooks/[0-9][0-9]_*.ipynb)
# metadata that changes on every save/run and carries no content (metadata.kernelspec stays: papermill needs it)
STRIP_KEYS := metadata.language_info metadata.papermill metadata.widgets \
              cell.metadata.papermill cell.metadata.execution cell.metadata.ExecuteTime \
              cell.metadata.collapsed cell.metadata.scrolled

.DEFAULT_GOAL := all
# nbstripout's options, shared by `make strip` and the git clean filter that `make setup` installs
STRIP_ARGS := --keep-id --drop-tagged-cells "injected-parameters papermill-error-cell-tag"

.PHONY: all setup git-filter lab run test test-gpu-smoke gpu-check test-browser lint format report benchmark strip clean help

all: setup run ## set up the environment, then run every notebook (PROFILE=smoke|cpu|gpu|gpu-smoke)

setup: $(STAMP) git-filter ## create the venv (VENV=.venv), pip install -e ".[dev]", its Jupyter kernel, the git filter

# Reinstalls only when pyproject.toml changes (or the stamp is deleted).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[dev]"
	@# the display name the committed notebooks carry: saving a notebook does not rewrite its kernelspec
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)"
	touch $@

# Repository-local git config: `git add` stores notebooks/*.ipynb through nbstripout (.gitattributes),
# so outputs, execution counts and metadata churn never reach a commit, whatever JupyterLab saved.
# Rerun `make setup` after moving the clone (the filter names this venv's python).
git-filter: $(STAMP)
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	    git config filter.nbstripout.clean '"$(abspath $(BIN))/python" -m nbstripout $(STRIP_ARGS)' && \
	    git config filter.nbstripout.smudge cat && \
	    git config filter.nbstripout.required true && \
	    git config filter.nbstripout.extrakeys "$(STRIP_KEYS)" && \
	    git config diff.ipynb.textconv '"$(abspath $(BIN))/python" -m nbstripout -t $(STRIP_ARGS)' && \
	    echo "git clean filter installed: notebooks are committed without outputs (.gitattributes)"; \
	else echo "not a git checkout: no clean filter installed (use make strip before sharing notebooks)"; fi

lab: setup ## open the course in JupyterLab (127.0.0.1) with the project's kernel; Ctrl-C stops it
	@test -n "$$PNEUMOLAB_DATA" || echo "note: PNEUMOLAB_DATA is not set; export it first (see README, Data)"
	@# JUPYTER_PATH first: this venv's python3 kernel wins over any user-wide kernel of that name
	JUPYTER_PATH="$(abspath $(VENV))/share/jupyter" $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 \
	    --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks/01_data_exploration.ipynb

run: setup ## execute the notebooks into build/executed/$(PROFILE)/ (ONLY="03 04" to pick some)
	$(BIN)/python -m pneumolib.run --profile $(PROFILE) $(if $(ONLY),--only $(ONLY))

test: setup ## lint, unit tests, every notebook once (smoke, then gpu-smoke), output checks, smoke PDF, browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest tests
	@# each notebook runs once, through the runner (papermill), which records run metadata
	$(BIN)/python -m pneumolib.run --profile smoke --cell-timeout 1200
	$(BIN)/pytest tests/smoke/check_outputs.py
	$(BIN)/python -m pneumolib.report --profile smoke
	$(MAKE) --no-print-directory test-gpu-smoke
	$(MAKE) --no-print-directory test-browser

test-gpu-smoke: setup ## every notebook on gpu-smoke (the gpu code path, tiny, CPU) with stand-in weights in a temporary TORCH_HOME
	@# stand-in weights: random init under torchvision's file names, never committed, never results
	export TORCH_HOME="$$(mktemp -d)" && \
	$(BIN)/python scripts/make_standin_weights.py && \
	$(BIN)/python -m pneumolib.run --profile gpu-smoke --cell-timeout 1200 && \
	PNEUMOLAB_PROFILE=gpu-smoke $(BIN)/pytest tests/smoke/check_outputs.py; \
	status=$$?; rm -rf "$$TORCH_HOME"; exit $$status

gpu-check: setup ## on a machine with a CUDA GPU: measure the gpu profile's path (benchmarks/GPU.md)
	$(BIN)/python scripts/gpu_check.py $(ARGS)

test-browser: setup ## JupyterLab driven by headless Chromium: 07 and 08 on smoke, slider and picker (needs chromium)
	$(BIN)/pytest -v tests/browser/browser_lab.py

lint: setup ## ruff: lint and format check (`make format` rewrites)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## ruff: sort imports, fix what is safe, format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

report: setup ## build the report from results/$(PROFILE)/
	$(BIN)/python -m pneumolib.report --profile $(PROFILE)

benchmark: setup ## time training steps on this machine (scripts/benchmark.py)
	$(BIN)/python scripts/benchmark.py

strip: setup ## remove outputs, execution counts and metadata churn from the notebooks
ifneq ($(strip $(NOTEBOOKS)),)
	@# --keep-id: cell ids are content (links, merges); without it nbstripout renumbers them
	$(BIN)/nbstripout $(STRIP_ARGS) --extra-keys "$(STRIP_KEYS)" $(NOTEBOOKS)
	$(BIN)/python scripts/check_notebooks_clean.py $(NOTEBOOKS)
else
	@echo "No notebooks/NN_*.ipynb to strip."
endif

clean: ## delete build/ (executed notebooks, caches, checkpoints); never data/ or results/
	rm -rf build .pytest_cache

help: ## list the targets
	@echo "make [target] [PROFILE=smoke|class|cpu|gpu|gpu-smoke] [PYTHON=python3] [VENV=.venv]"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 18

# The course's task runner. `make book` and `make test` are the two commands of the README.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# The torch to install, as words for pip (unquoted, so an index URL can follow): see book/setup.md,
# e.g. make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC ?= torch==2.13.0
PIP := $(PY) -m pip --disable-pip-version-check --quiet

.PHONY: help install lab test lint book export check-export notebooks clean
.DEFAULT_GOAL := help

help:
	@echo "make book      build the rendered book (prints where index.html is)"
	@echo "make test      run every test: llmlib, all chapters (nbval, smoke mode), drift, hygiene, Colab path, book build"
	@echo "make lab       install JupyterLab into .venv and open the chapters in it"
	@echo "make lint      ruff over llmlib/, tests/, benchmarks/, tools/ and the chapters (also part of make test)"
	@echo "make export    regenerate llmlib/ from the chapters' #| export cells"
	@echo "make notebooks NB=chapters/01_tokenizers.ipynb   execute chapters in place (cpu/gpu mode) to refresh committed outputs"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=24"
	$(PIP) install $(TORCH_SPEC)
	$(PIP) install -e ".[dev]"
	touch $@

# Node tools for the tests: wabt checks that llmlib/static/linear_wasm.js is built from linear.wat.
node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $@

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.jupyter: $(VENV)/.installed
	$(PIP) install -e ".[dev,jupyter]"
	touch $@

# Extra options for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --port 8890" (or --allow-root in
# a container, where JupyterLab refuses to run as root without it).
LAB_ARGS ?=
lab: $(VENV)/.jupyter
	$(VENV)/bin/jupyter lab chapters/ $(LAB_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check

test: $(VENV)/.installed node_modules/.installed
	LLMLIB_SMOKE=1 $(PY) -m pytest

book: $(VENV)/.installed
	$(VENV)/bin/jupyter-book build . -W --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

export: $(VENV)/.installed
	$(PY) tools/export.py

check-export: $(VENV)/.installed
	$(PY) tools/export.py --check

NB ?= chapters/*.ipynb
notebooks: $(VENV)/.installed
	env -u LLMLIB_SMOKE $(PY) tools/run_notebooks.py $(NB)

clean:
	rm -rf _build

# The two set-up commands of the README, on a fresh machine:
#   make demo   create .venv, install samcrowd, run the whole study on the embedded default
#   make test   create .venv, install samcrowd with its test tools, run the test suite
#   make lint   ruff, snakefmt and snakemake --lint (CI runs it before the tests)
# torch==2.14.1 / torchvision==0.29.1 come from pip's configured local wheels where present.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.samcrowd-installed
CORES ?= all
PYTEST_ARGS ?=

.PHONY: venv demo test lint clean-results

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)

# pytest exits 5 when it collects no tests: a test run that tested nothing is a failure.
test: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; that is a failure" >&2; exit 1; fi; \
	exit $$rc

# ruff (lint, format check), snakefmt (format check of the Snakemake files), Snakemake's own lint
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

clean-results:
	rm -rf results .snakemake

# Every target works on a fresh machine: `install` builds .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What `serve` needs (the package alone), and what the tests and tools need besides (the
# dev extra): each stamp says that its install is done and newer than pyproject.toml.
SERVE_STAMP := $(VENV)/.installed-serve
STAMP := $(VENV)/.installed

.PHONY: install install-serve serve test test-unit test-integration lint bench fuzz clean

install: $(STAMP)

install-serve: $(SERVE_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(SERVE_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(SERVE_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: install-serve
	$(BIN)/authprofiles serve

# Three workers (the suite waits on servers and IdPs more than it computes: a third on
# two cores still shortens it), each taking whole test files, the longest first (module
# fixtures stay together); every test owns its ports, directories and databases.
# TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 3
test: install
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadfile --durations=15

test-unit: install
	$(BIN)/python -m pytest tests/unit

# The schema fuzzer at length, with a fresh seed each run (make test runs a short, seeded
# pass of the same test). FUZZ_SEED=N repeats a run; FUZZ_EXAMPLES sets its length.
FUZZ_EXAMPLES ?= 500
FUZZ_SEED ?=
fuzz: install
	AUTHPROFILES_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) AUTHPROFILES_FUZZ_SEED=$(FUZZ_SEED) \
	  $(BIN)/python -m pytest tests/integration/test_openapi_fuzz.py -s -o timeout=3600

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# wrk generates the load (a Python generator would saturate before the server does).
bench: install
	command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk is not installed: falling back to the slower Python load generator"
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Everything runs inside .venv, created and filled on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## the service on 127.0.0.1:8000 with a demo network on the embedded PostgreSQL
	$(BIN)/coalition serve --demo

test: lint typecheck  ## lint, type check, then the whole test suite on a throwaway PostgreSQL
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)  ## benchmarks next to pgbench TPC-B, then the targets table (needs wrk: installed here when missing)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| (echo "make bench needs wrk: apt-get install wrk" >&2; exit 2)
	$(BIN)/coalition bench --targets

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

FUZZ_EXAMPLES ?= 300

.PHONY: fuzz
fuzz: $(STAMP)  ## the schemathesis fuzz with many more examples per operation than CI's 20
	COALITION_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/security/test_api_fuzz.py -q -s \
		-k every_operation -p no:cacheprovider

.PHONY: soak
soak: $(STAMP)  ## mixed traffic with random kills of server and PostgreSQL (SOAK_MINUTES=10)
	$(BIN)/python -m tests.faults.soak

# Fluxbase: `make run` serves on 127.0.0.1:8080, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test test-nightly bench bench-rest bench-realtime bench-storage lint typecheck pytest install system-deps node-deps clean

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

# The storage-js conformance suite (tests/storage-js) runs under Node 20 with its locked packages.
NODE_STAMP := tests/storage-js/node_modules/.installed-$(shell cat tests/storage-js/package-lock.json | cksum | cut -d' ' -f1)

$(NODE_STAMP):
	@command -v npm >/dev/null 2>&1 || bash deploy/scripts/system-deps.sh node
	cd tests/storage-js && npm ci --no-audit --no-fund --loglevel=error
	rm -f tests/storage-js/node_modules/.installed-* && touch $@

node-deps: $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

# Without DATABASE_URL, `fluxbase serve` runs its own PostgreSQL under ./.fluxbase, listening
# on 127.0.0.1 (FLUXBASE_SERVER_PORT / FLUXBASE_SERVER_HOST change that); a new data folder
# gets the example todo app (examples/todos.sql).
run: $(STAMP)
	@if [ -z "$$DATABASE_URL" ]; then bash deploy/scripts/system-deps.sh run; fi
	@$(BIN)/fluxbase init --if-new
	@$(BIN)/fluxbase keys
	@echo
	@exec $(BIN)/fluxbase serve

# The benchmarks (tests/perf/), results in docs/BENCHMARKS.md.
bench: bench-rest bench-realtime bench-storage

# The data API benchmark: Fluxbase next to a minimal baseline under wrk.
bench-rest: $(STAMP)
	bash deploy/scripts/system-deps.sh bench
	$(BIN)/python tests/perf/bench_rest.py

# 2,000 then 5,000 realtime subscribers on one `fluxbase serve`: latency, throughput, memory.
bench-realtime: $(STAMP)
	bash deploy/scripts/system-deps.sh run
	$(BIN)/python tests/perf/bench_realtime.py

# A 1 GiB upload and download (local disk, then S3 on a moto server): throughput against cp
# and a direct aiobotocore transfer, the server's peak RSS.
bench-storage: $(STAMP)
	bash deploy/scripts/system-deps.sh run
	$(BIN)/python tests/perf/bench_storage.py

system-deps:
	bash deploy/scripts/system-deps.sh test

lint: $(STAMP)
	$(BIN)/ruff check server tests
	$(BIN)/ruff format --check server tests

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) $(NODE_STAMP) system-deps
	$(BIN)/pytest

test: lint typecheck pytest

# The long attacks (slow-loris at the default timeout, floods of large bodies, four workers on one
# Redis), each bounded in time; `make test` skips them.
test-nightly: $(STAMP) system-deps
	FLUXBASE_NIGHTLY=1 $(BIN)/pytest -m nightly tests/security

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache server/*.egg-info

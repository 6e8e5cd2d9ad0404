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

install: $(STAMP) node-deps

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

# The data API benchmark: Fluxbase next to a minimal baseline under wrk
# (BENCH_REST_ARGS="--profile after" also records a py-spy profile).
bench-rest: $(STAMP)
	bash deploy/scripts/system-deps.sh bench
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python tests/perf/bench_rest.py $(BENCH_REST_ARGS)

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

# The Node conformance suites (supabase-js / postgrest-js in tests/node/*/, storage-js in
# tests/storage-js/), each installed with `npm ci` when its lock file is newer than what is
# installed; Debian's nodejs and npm are installed first when missing.
node-deps:
	@command -v npm >/dev/null 2>&1 || bash deploy/scripts/system-deps.sh node
	@for dir in tests/node/*/ tests/storage-js/; do \
	  if [ -f "$$dir/package-lock.json" ] && \
	     ! [ "$$dir/node_modules/.package-lock.json" -nt "$$dir/package-lock.json" ]; then \
	    (cd "$$dir" && npm ci --no-audit --no-fund --loglevel=error) || exit 1; \
	  fi; \
	done

lint: $(STAMP)
	$(BIN)/ruff check server tests
	$(BIN)/ruff format --check server tests

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps node-deps
	$(BIN)/pytest

test: lint typecheck pytest

# The long attacks (slow-loris at the default timeout, floods of large bodies, four workers on one
# Redis), each bounded in time; `make test` skips them.
test-nightly: $(STAMP) system-deps
	FLUXBASE_NIGHTLY=1 $(BIN)/pytest -m nightly tests/security

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache server/*.egg-info

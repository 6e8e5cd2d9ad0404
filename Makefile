# Fluxbase: `make run` serves on 127.0.0.1:8080, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test test-nightly test-containers bench bench-rest bench-audit bench-realtime bench-storage \
	bench-dashboard lint typecheck pytest install system-deps node-deps ui e2e-deps clean

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) node-deps

# The dashboard's app (admin/), built into the package (dashboard_ui/static/) when missing or stale;
# `fluxbase serve` then needs no network and no Node.
UI_BUILD   := server/fluxbase/dashboard_ui/static/index.html
UI_SOURCES := $(shell find admin/src admin/scripts -type f 2>/dev/null) admin/index.html admin/vite.config.ts admin/tsconfig.json admin/package.json
UI_NODE    := admin/node_modules/.installed-$(shell cat admin/package-lock.json | cksum | cut -d' ' -f1)

$(UI_NODE): admin/package-lock.json
	@bash deploy/scripts/system-deps.sh node
	cd admin && npm ci --no-audit --no-fund --loglevel=error
	rm -f admin/node_modules/.installed-* && touch $@

$(UI_BUILD): $(UI_NODE) $(UI_SOURCES)
	cd admin && npm run --silent build

ui: $(UI_BUILD)

# The dashboard's browser tests: Debian's chromium and axe-core (tests/e2e/package.json).
E2E_NODE := tests/e2e/node_modules/.installed-$(shell cat tests/e2e/package-lock.json | cksum | cut -d' ' -f1)

$(E2E_NODE): tests/e2e/package-lock.json
	@command -v npm >/dev/null 2>&1 || bash deploy/scripts/system-deps.sh node
	cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error
	rm -f tests/e2e/node_modules/.installed-* && touch $@

e2e-deps: $(E2E_NODE) $(UI_BUILD)
	bash deploy/scripts/system-deps.sh e2e

# Without DATABASE_URL, `fluxbase serve` runs its own PostgreSQL under ./.fluxbase, listening
# on 127.0.0.1 (FLUXBASE_SERVER_PORT / FLUXBASE_SERVER_HOST change that); a new data folder
# gets the example todo app (examples/db/, a sqitch project).
run: $(STAMP) $(UI_BUILD)
	@if [ -z "$$DATABASE_URL" ]; then bash deploy/scripts/system-deps.sh run; fi
	@$(BIN)/fluxbase init --if-new
	@$(BIN)/fluxbase keys
	@echo
	@exec $(BIN)/fluxbase serve

# The benchmarks (tests/perf/), results in docs/BENCHMARKS.md.
bench: bench-rest bench-audit bench-realtime bench-storage bench-dashboard

# The data API benchmark: Fluxbase next to a minimal baseline under wrk
# (BENCH_REST_ARGS="--profile after" also records a py-spy profile).
bench-rest: $(STAMP)
	bash deploy/scripts/system-deps.sh bench
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python tests/perf/bench_rest.py $(BENCH_REST_ARGS)

# The audit trail's write overhead: POST into a table with and without audit.enable_tracking.
bench-audit: $(STAMP)
	bash deploy/scripts/system-deps.sh bench
	$(BIN)/python tests/perf/bench_rest.py --mode audit

# 2,000 realtime subscribers on 1 and 2 workers next to main's code: latency, steady load,
# capacity and who used the CPU; 10,000 idle sockets' memory (BENCH_REALTIME_ARGS: see --help).
bench-realtime: $(STAMP)
	bash deploy/scripts/system-deps.sh run
	$(BIN)/python tests/perf/bench_realtime.py $(BENCH_REALTIME_ARGS)

# A 1 GiB upload and download (local disk, then S3 on a moto server): throughput against cp
# and a direct aiobotocore transfer, the server's peak RSS.
bench-storage: $(STAMP)
	bash deploy/scripts/system-deps.sh run
	$(BIN)/python tests/perf/bench_storage.py

# The dashboard's bundle size and time to first render of its overview, in Debian's chromium.
bench-dashboard: $(STAMP) e2e-deps
	bash deploy/scripts/system-deps.sh run
	$(BIN)/python tests/perf/bench_dashboard.py

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

pytest: $(STAMP) system-deps node-deps e2e-deps
	$(BIN)/pytest

test: lint typecheck pytest

# The long attacks (slow-loris at the default timeout, floods of large bodies, four workers on one
# Redis), each bounded in time; `make test` skips them.
test-nightly: $(STAMP) system-deps
	FLUXBASE_NIGHTLY=1 $(BIN)/pytest -m nightly tests/security

# The image for real: deploy/Dockerfile built with podman on a Debian base made by mmdebstrap,
# then run against a PostgreSQL on this host (/ready, --config-test, non-root, SIGTERM). Minutes.
test-containers: $(STAMP)
	bash deploy/scripts/system-deps.sh containers
	FLUXBASE_CONTAINER_TESTS=1 $(BIN)/pytest -m containers tests/deploy/test_container.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache server/*.egg-info
	rm -rf admin/node_modules tests/e2e/node_modules server/fluxbase/dashboard_ui/static

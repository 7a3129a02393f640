# Every target installs what it needs into .venv first: `make run` only the server and its
# runtime dependencies (pyproject.toml), the others the test and lint tools too.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed

.PHONY: install run cluster test test-asyncio test-python-client lint proto bench bench-quick \
	bench-metrics bench-wire bench-paired bench-hooks bench-workers conformance fuzz-api soak clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml requirements.txt | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt clients/python/pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet -e './clients/python[test]'
	touch $(STAMP) $(RUN_STAMP)

install: $(STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/events-server

# 3 nodes on Redis and PostgreSQL behind nginx (docs/deployment.md); CLUSTER_ARGS passes
# options, e.g. CLUSTER_ARGS='--nodes 2 --port 9000'. Ctrl-C stops it.
cluster: $(STAMP)
	$(PY) -m localcluster $(CLUSTER_ARGS)

# The Node script's and the JavaScript client library's tests need their packages (ws, protobufjs).
NODE_CLIENTS := clients/node/node_modules clients/js/node_modules

clients/%/node_modules: clients/%/package.json clients/%/package-lock.json
	@if command -v npm >/dev/null; then \
		cd clients/$* && npm ci --no-audit --no-fund --loglevel=error && touch node_modules; \
	else echo "npm not found: the tests of clients/$* will be skipped"; fi

test: $(STAMP) $(NODE_CLIENTS)
	$(PY) -m pytest $(PYTEST_ARGS)
	$(PY) -m pytest clients/python/tests $(CLIENT_PYTEST_ARGS)

# The Python client library's own tests (clients/python), against real server processes.
test-python-client: $(STAMP)
	$(PY) -m pytest clients/python/tests $(CLIENT_PYTEST_ARGS)

# The WebSocket, SSE and cluster tests on the stock asyncio loop (`make test` runs everything
# on the default loop: uvloop when installed), so both loops the server supports are tested.
LOOP_TESTS := tests/test_ws_*.py tests/test_sse*.py tests/test_cluster*.py tests/test_coalesce.py \
	tests/test_robustness_ws.py tests/test_heartbeat.py tests/test_recovery_ws.py tests/test_restart.py \
	tests/test_hooks.py tests/test_webhooks*.py

test-asyncio: $(STAMP)
	TEST_LOOP=asyncio $(PY) -m pytest $(LOOP_TESTS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# hub/events_pb2.py is generated from proto/events.proto and committed; a test checks it is
# current (grpcio-tools bundles protoc, pinned in requirements-dev.txt). The Python client
# ships a copy of the schema and its own generated module (with type stubs), checked the
# same way.
PY_CLIENT_PKG := clients/python/src/events_client
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=hub proto/events.proto
	cp proto/events.proto $(PY_CLIENT_PKG)/events.proto
	$(PY) -m grpc_tools.protoc -I$(PY_CLIENT_PKG) --python_out=$(PY_CLIENT_PKG) \
		--pyi_out=$(PY_CLIENT_PKG) $(PY_CLIENT_PKG)/events.proto

clean:
	rm -rf $(VENV) $(CONFORMANCE_VENV) .pytest_cache .ruff_cache proof/reports .schemathesis

# -- RFC 6455 conformance: the Autobahn|Testsuite cases, replayed by kosoku against the echo
# route of the real WebSocket stack (proof/, docs/websocket.md "Conformance"). kosoku has a
# venv of its own. FULL=1 runs every group (1-7, 9, 10, 12, 13; about 10 minutes); the
# default is what CI runs (1-7, 12.1, 13.1). Reports: proof/reports/.
CONFORMANCE_VENV := .venv-conformance
CONFORMANCE_STAMP := $(CONFORMANCE_VENV)/.installed

$(CONFORMANCE_STAMP): requirements-conformance.txt
	test -x $(CONFORMANCE_VENV)/bin/python || $(PYTHON) -m venv $(CONFORMANCE_VENV)
	$(CONFORMANCE_VENV)/bin/python -m pip install --quiet -r requirements-conformance.txt
	touch $(CONFORMANCE_STAMP)

conformance: $(STAMP) $(CONFORMANCE_STAMP)
	$(PY) -m proof.conformance $(if $(FULL),--full) $(CONFORMANCE_ARGS)

# -- benchmarks: see docs/benchmarks.md ----------------------------------------------------
BENCH_STAMP := $(VENV)/.bench-installed
NODE_PEER := bench/peers/node

$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $(BENCH_STAMP)

$(NODE_PEER)/node_modules: $(NODE_PEER)/package.json $(NODE_PEER)/package-lock.json
	@if command -v npm >/dev/null; then \
		cd $(NODE_PEER) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules; \
	else echo "npm not found: the Node ws and socket.io peers will be skipped"; fi

# BENCH_ARGS passes options to bench/run.py, e.g. BENCH_ARGS='--note "shared machine"'; each
# run rewrites only the sections of docs/benchmarks.md it measured.
bench: $(BENCH_STAMP) $(NODE_PEER)/node_modules
	$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP) $(NODE_PEER)/node_modules
	$(PY) -m bench.run --quick $(BENCH_ARGS)

# JSON vs protobuf and permessage-deflate on vs off, beside the websockets peer (also part of
# `make bench`; BENCH_ARGS=--no-wire skips it there).
bench-wire: $(BENCH_STAMP)
	$(PY) -m bench.workloads.wire $(BENCH_ARGS)

# CPU per handshake (new users; known sessions reconnecting) and per delivery, every server up
# at once in alternating rounds (ratios a noisy machine cannot skew; not part of `make bench`).
# BENCH_ARGS=--quick: under a minute;
# BENCH_ARGS='--base main' also runs the build of git revision main: a paired before/after.
bench-paired: $(BENCH_STAMP)
	$(PY) -m bench.workloads.paired $(BENCH_ARGS)

# R1 room publishes with the publish hook on (an application answering in-process) and off
# (also part of `make bench`; BENCH_ARGS=--no-hooks skips it there).
bench-hooks: $(BENCH_STAMP)
	$(PY) -m bench.run --hooks-only $(BENCH_ARGS)

# C4: --workers 2 vs --workers 1 on one port, handshakes and deliveries, the server free on
# every core (also part of `make bench`; BENCH_ARGS=--no-workers skips it there). PostgreSQL
# (BENCH_POSTGRES_URL) and redis-server.
bench-workers: $(BENCH_STAMP)
	$(PY) -m bench.run --workers-only $(BENCH_ARGS)

# W2 CPU per delivery with --metrics on and off, side by side.
bench-metrics: $(BENCH_STAMP)
	$(PY) -m bench.workloads.overhead $(BENCH_ARGS)

# -- the REST API fuzzed from its OpenAPI document (proof/fuzz_api.py, docs/api.md "Fuzzing
# the API"): schemathesis against a server on SQLite, one on PostgreSQL and a short run with
# the rate limits on; exits non-zero on any failure, 5xx, traceback or error line in a
# server's log. FUZZ_ARGS passes options, e.g. FUZZ_ARGS='--databases sqlite --max-time 600'.
fuzz-api: $(STAMP)
	$(PY) -m proof.fuzz_api $(FUZZ_ARGS)

# -- the soak: see docs/benchmarks.md, "Soak" ----------------------------------------------
# Connections held under broadcasts, room traffic, churn, logins and slow consumers, checked
# for flat memory, descriptors and latency and for every delivery; exits 1 on a missed
# criterion. `make soak` is the short form CI runs; FULL=1 the full one (10 minutes, 10,000
# connections); SOAK_ARGS passes options, e.g. SOAK_ARGS='--minutes 3 --connections 5000'.
SOAK_SHORT := --minutes 1 --connections 2000

soak: $(BENCH_STAMP)
	$(PY) -m proof.soak $(if $(FULL),,$(SOAK_SHORT)) $(SOAK_ARGS)

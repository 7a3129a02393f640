# Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run cluster test lint proto bench bench-quick bench-metrics bench-wire bench-paired \
	bench-hooks \
	clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) main.py

# 3 nodes on Redis and PostgreSQL behind nginx (docs/deployment.md); CLUSTER_ARGS passes
# options, e.g. CLUSTER_ARGS='--nodes 2 --port 9000'. Ctrl-C stops it.
cluster: $(STAMP)
	$(PY) -m localcluster $(CLUSTER_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# hub/events_pb2.py is generated from proto/events.proto and committed; a test checks it is
# current (grpcio-tools bundles protoc, pinned in requirements-dev.txt).
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=hub proto/events.proto

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

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

# CPU per handshake and per delivery, every server up at once in alternating rounds (ratios
# a noisy machine cannot skew; not part of `make bench`). BENCH_ARGS=--quick: about a minute.
bench-paired: $(BENCH_STAMP)
	$(PY) -m bench.workloads.paired $(BENCH_ARGS)

# R1 room publishes with the publish hook on (an application answering in-process) and off
# (also part of `make bench`; BENCH_ARGS=--no-hooks skips it there).
bench-hooks: $(BENCH_STAMP)
	$(PY) -m bench.workloads.hooks $(BENCH_ARGS)

# W2 CPU per delivery with --metrics on and off, side by side.
bench-metrics: $(BENCH_STAMP)
	$(PY) -m bench.workloads.overhead $(BENCH_ARGS)

# Pollinate: the two commands are `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
UV := PYTHON=$(PYTHON) deploy/uv.sh
STACK := deploy/local-stack.sh

.PHONY: install test-tools demo test test-cluster bench bench-3 bench-quick bench-scale lint typecheck contracts unit integration stack-up stack-down services-up services-down stop clean

install:  ## Python 3.11 deps into .venv (installs uv itself if missing: deploy/uv.sh)
	@$(UV) sync --frozen --quiet

test-tools:  ## outside tools the tests drive (kcat), from Debian when run as root
	@deploy/test-tools.sh

stack-up:  ## local Kafka (KRaft) + PostgreSQL, no Docker needed
	@$(STACK) start

stack-down:
	@$(STACK) stop

services-up: install stack-up  ## the six services as separate processes
	@deploy/services.sh start

services-down:
	@deploy/services.sh stop

demo: install stack-up services-up  ## run the platform locally and a short demo; leaves it running
	@eval "$$($(STACK) env)" && .venv/bin/python -m deploy.demo
	@echo "The platform keeps running: 'make stop' stops services, Kafka and Postgres."

stop: services-down stack-down

lint: install
	@.venv/bin/ruff check shared services tests deploy benchmarks examples
	@.venv/bin/ruff format --check shared services tests deploy benchmarks examples

typecheck: install
	@.venv/bin/mypy

bench: install stack-up  ## end-to-end benchmark, full mode (writes .work/bench/results.json)
	@eval "$$($(STACK) env)" && .venv/bin/python -m benchmarks.chain

bench-3: install stack-up  ## the full benchmark three times, side by side: issue 23's goals met in how many runs
	@eval "$$($(STACK) env)" && .venv/bin/python -m benchmarks.chain --runs 3 --out .work/bench/runs.json

bench-quick: install stack-up  ## the same in under 2 minutes
	@eval "$$($(STACK) env)" && .venv/bin/python -m benchmarks.chain --quick

bench-scale: install stack-up  ## quick mode, then saturation with two instances of each service (deals/s of both)
	@eval "$$($(STACK) env)" && .venv/bin/python -m benchmarks.chain --quick --scale --out .work/bench/scale.json

contracts: install  ## regenerate docs/asyncapi.json (prints breaking changes) and docs/openapi/*.json
	.venv/bin/python -m shared.asyncapi
	.venv/bin/python -m shared.openapi

unit: install
	@.venv/bin/pytest tests/unit -q

# services-down: a demo's services left running (`make demo` leaves them) would share the tests'
# consumer groups and relay locks, and take half their events.
test: install stack-up services-down test-tools lint typecheck  ## the whole suite against real Kafka and Postgres
	@eval "$$($(STACK) env)" && .venv/bin/pytest -q -p no:cacheprovider

# A replicated cluster of its own (three KRaft nodes on 19092/19102/19112, its own Postgres on
# 15432, under .work/cluster), so it never disturbs the one-broker stack: the fault tests,
# the partition leaders' broker killed -9 among them, then the cluster is stopped.
CLUSTER := KAFKA_BROKERS=3 POLLINATE_WORK_DIR=$(CURDIR)/.work/cluster POLLINATE_KAFKA_LIBS=$(CURDIR)/.work/kafka/libs KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 KAFKA_TLS_PORT=19094 PG_PORT=15432
test-cluster: install test-tools  ## the fault tests on a three-broker cluster (replication 3, min ISR 2)
	@status=0; $(CLUSTER) $(STACK) start || status=$$?; \
	  if [ $$status = 0 ]; then eval "$$($(CLUSTER) $(STACK) env)" && \
	    $(CLUSTER) .venv/bin/pytest -q -p no:cacheprovider -s tests/e2e/test_faults.py || status=$$?; fi; \
	  $(CLUSTER) $(STACK) stop || true; exit $$status

clean: stop
	@$(STACK) reset

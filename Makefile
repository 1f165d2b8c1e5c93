# kyufu — the one command menu. `make help` lists the targets.
# `make run` and `make test` work on a fresh machine: they create .venv, install the pinned
# dependencies (requirements.lock) and the Debian packages the suite needs (age, chromium, wrk).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# make test runs the suite in this many processes (pytest-xdist), each with its own embedded PostgreSQL and
# Valkey; 2 matches the CI machine's cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
PIPELINE_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install system-deps run test test-fast chaos loadtest surge pipeline services-up services-down migrate clean \
	cluster-install cluster cluster-down cluster-status cluster-chaos

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The editable install also compiles payouts/_fastrender.c (setup.py), which needs gcc and OpenSSL's
# headers; they are installed first when missing. Editing the C file re-runs the install.
$(STAMP): pyproject.toml requirements.lock setup.py payouts/_fastrender.c app/registry/_residentcsv.c
	@missing=""; \
	command -v gcc >/dev/null || missing="$$missing gcc"; \
	test -f /usr/include/openssl/evp.h || missing="$$missing libssl-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the pinned dependencies (and gcc + libssl-dev for payouts/_fastrender.c if missing)

system-deps: ## Install Debian's age, chromium, wrk and a Japanese font if missing (needs root or sudo)
	@missing=""; \
	command -v age >/dev/null || missing="$$missing age"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	dpkg -s fonts-ipafont-gothic >/dev/null 2>&1 || missing="$$missing fonts-ipafont-gothic"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

run: install ## Start everything (embedded services, migrate, seed demo, app, worker); Ctrl-C stops
	$(VENV)/bin/kyufu run

test: install system-deps cluster-install ## Run the whole suite on real PostgreSQL and Valkey (embedded unless DATABASE_URL/REDIS_URL); of tests/cluster only the HA smoke test (the faults: make cluster-chaos)
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not cluster" $(PYTEST_ARGS)

test-fast: install ## The suite without the browser tests and the HA cluster
	$(PY) -m pytest -m "not browser and not cluster" --ignore=tests/cluster $(PYTEST_ARGS)

chaos: install ## Only the injected-fault scenarios (SIGKILLed worker/app, Valkey lost empty, PostgreSQL crashed/restarted, outbox disk full); also part of make test
	$(PY) -m pytest tests/chaos -v $(PYTEST_ARGS)

# The HA cluster (devtools/cluster, docs/cluster.md): Debian's etcd and HAProxy, and Patroni in a venv made
# from Debian's /usr/bin/python3 (as root, Patroni runs as the PostgreSQL system user, which cannot reach a
# Python under /root). Pinned in requirements-cluster.lock.
# As root it lives under /var/lib/kyufu (0711), where app/services.py keeps PostgreSQL's binaries: the
# checkout's parents are never opened up for that user (docs/operations.md#as-root).
CLUSTER_VENV := $(if $(filter 0,$(shell id -u)),/var/lib/kyufu/patroni-venv,.venv-cluster)
CLUSTER_STAMP := $(CLUSTER_VENV)/.installed

$(CLUSTER_STAMP): requirements-cluster.lock
	@missing=""; \
	command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v haproxy >/dev/null || missing="$$missing haproxy"; \
	/usr/bin/python3 -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@if [ "$$(id -u)" = 0 ]; then install -d -m 0711 /var/lib/kyufu; fi
	@test -x $(CLUSTER_VENV)/bin/python || /usr/bin/python3 -m venv $(CLUSTER_VENV)
	$(CLUSTER_VENV)/bin/pip install -q -r requirements-cluster.lock
	@touch $(CLUSTER_STAMP)

cluster-install: $(CLUSTER_STAMP) ## Install what the HA cluster needs: Debian's etcd-server and haproxy, Patroni 4.1.5 into its own venv

cluster: install cluster-install ## The HA cluster on this machine (3 etcd, 2 PostgreSQL under Patroni, HAProxy, Valkey + 3 Sentinels, 2 app + 2 worker nodes) under .data/cluster; prints URLs
	$(VENV)/bin/kyufu cluster up

cluster-status: install ## Each node of the HA cluster and its role
	$(VENV)/bin/kyufu cluster status

cluster-down: install ## Stop every node of the HA cluster
	$(VENV)/bin/kyufu cluster down

cluster-chaos: install cluster-install ## The HA cluster's fault scenarios (tests/cluster: PostgreSQL leader, Valkey primary, app and worker nodes SIGKILLed; ~15 min)
	$(PY) -m pytest tests/cluster -v -s $(PYTEST_ARGS)

loadtest: install system-deps ## Both load tests (loopback, bounded, ~3.5 min): the wrk submit-path bench, then `make surge`
	$(PY) loadtests/submit_bench.py --duration 8 --letters 40000
	$(PY) loadtests/surge/run.py

surge: install ## Surge test (locust mixed scenario, ~3 min): sustainable rate, then 2x; JSON + PNG report in loadtests/results/, DB check
	$(PY) loadtests/surge/run.py

pipeline: install system-deps ## End-to-end pipeline bench on real processes (registry to released bank file; defaults 1,000,000 households / 200,000 applications, long); PIPELINE_ARGS="--households 200000 --applications 50000"
	$(PY) loadtests/pipeline.py $(PIPELINE_ARGS)

services-up: install ## Start the embedded PostgreSQL and Valkey under .data/
	$(VENV)/bin/kyufu services up

services-down: install ## Stop the embedded servers
	$(VENV)/bin/kyufu services down

migrate: install ## Apply pending migrations
	$(VENV)/bin/kyufu db migrate

clean: ## Stop services and remove .venv and .data (destroys local data)
	-$(VENV)/bin/kyufu services down
	-$(VENV)/bin/kyufu cluster destroy
	rm -rf $(VENV) .data

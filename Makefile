# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.installed-test
BENCH_INSTALLED := $(VENV)/.installed-bench

.PHONY: demo test bench soak lint lock clean

$(INSTALLED): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e .
	touch $@

# Tests cover the optional semantic embedder (sentence-transformers on torch) when a CPU build
# of torch is at hand: SEMANTIC=auto takes torch 2.13.0 only from pip's local find-links, never
# from an index (PyPI's Linux wheel of torch is a CUDA build of several GB). SEMANTIC=yes fetches
# the CPU build from PyTorch's own index; SEMANTIC=no leaves the extra out. CI sets
# AGENTOPS_REQUIRE_SEMANTIC=1, so that a missing extra fails the install instead of skipping.
SEMANTIC ?= auto
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
$(TEST_INSTALLED): $(INSTALLED)
	@extras=test; \
	if [ "$(SEMANTIC)" = yes ]; then \
		$(BIN)/python -m pip install --quiet --index-url $(TORCH_CPU_INDEX) torch==2.13.0 || exit 1; \
		extras=test,semantic; \
	elif [ "$(SEMANTIC)" = auto ] && $(BIN)/python -m pip install --quiet --no-index --no-deps torch==2.13.0 2>/dev/null; then \
		extras=test,semantic; \
	elif [ "$(SEMANTIC)" = auto ] && [ "$$AGENTOPS_REQUIRE_SEMANTIC" = 1 ]; then \
		echo "make: AGENTOPS_REQUIRE_SEMANTIC=1 but no local CPU build of torch 2.13.0" >&2; exit 1; \
	elif [ "$(SEMANTIC)" = auto ]; then \
		echo "make: no local CPU build of torch 2.13.0; the semantic embedder's test will be skipped" \
			"(make test SEMANTIC=yes fetches the CPU build, about 750 MB installed)"; \
	fi; \
	echo "$(BIN)/python -m pip install -c requirements.lock -e '.[$$extras]'"; \
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[$$extras]"
	touch $@

demo: $(INSTALLED)  ## set up, then simulate a fleet and materialize every asset
	$(BIN)/agentops demo

# The demo through Dagster's production deployment, started here: the lake on a local S3 server,
# Dagster on PostgreSQL (AGENTOPS_PG_URL, default postgresql://postgres@127.0.0.1:5432/agentops),
# webserver, daemon, code server and two Celery workers (AGENTOPS_CELERY_BROKER, default the
# local RabbitMQ); ends with its tables against the embedded demo's, non-zero if any differs.
CLUSTER_INSTALLED := $(VENV)/.installed-cluster
$(CLUSTER_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[cluster]'
	touch $@

.PHONY: demo-distributed
demo-distributed: $(CLUSTER_INSTALLED)  ## the demo through Dagster on PostgreSQL and Celery workers
	$(BIN)/agentops demo --distributed

# The console's browser tests drive Debian's Chromium through Playwright (Playwright's own
# browser download needs the network at test time; Debian's package comes from the registry).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get install -y --no-install-recommends chromium \
		|| (apt-get update && apt-get install -y --no-install-recommends chromium)

test: $(TEST_INSTALLED) $(CHROMIUM) lint  ## set up, then lint and run the tests
	$(BIN)/python -m pytest

lint: $(TEST_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The bench environment adds Evidently (compared with the drift layer), never a runtime dependency.
$(BENCH_INSTALLED): $(TEST_INSTALLED)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,bench]'
	touch $@

# The 10 M-event home bench_finops.py builds is kept in data/bench/fleet and read by the
# anomaly and drift benches too; `make clean` removes it.
BENCH_HOME := $(CURDIR)/data/bench/fleet
bench: $(BENCH_INSTALLED)  ## performance targets; prints figures
	@rm -rf $(BENCH_HOME)
	@for script in bench/bench_finops.py $(filter-out bench/bench_finops.py,$(sort $(wildcard bench/bench_*.py))); do \
		echo "== $$script"; AGENTOPS_BENCH_HOME=$(BENCH_HOME) $(BIN)/python $$script || exit 1; \
	done

soak: $(TEST_INSTALLED)  ## SIGKILL `agentops run` at random moments; recovery must equal a clean run
	$(BIN)/python bench/soak_sigkill.py

lock: $(TEST_INSTALLED)  ## rewrite requirements.lock from the tested environment
	{ sed -n '1,2p' requirements.lock; $(BIN)/python -m pip freeze --exclude-editable \
		| grep -v -i -E '^(torch|nvidia-|triton)'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) data/lake data/landing data/lance data/knowledge data/control data/dagster data/simulator data/alerts data/bench

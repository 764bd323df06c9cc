# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.installed-test

.PHONY: demo test bench soak lint lock clean

$(INSTALLED): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e .
	touch $@

# Tests cover the optional semantic embedder too. torch is pinned first so that pip takes
# its CPU build; left to sentence-transformers it would fetch a multi-GB CUDA build.
$(TEST_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,semantic]'
	touch $@

demo: $(INSTALLED)  ## set up, then simulate a fleet and materialize every asset
	$(BIN)/agentops demo

test: $(TEST_INSTALLED) lint  ## set up, then lint and run the tests
	$(BIN)/python -m pytest

lint: $(TEST_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(TEST_INSTALLED)  ## performance targets; prints figures
	@for script in bench/bench_*.py; do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

soak: $(TEST_INSTALLED)  ## SIGKILL `agentops run` at random moments; recovery must equal a clean run
	$(BIN)/python bench/soak_sigkill.py

lock: $(TEST_INSTALLED)  ## rewrite requirements.lock from the tested environment
	{ sed -n '1,2p' requirements.lock; $(BIN)/python -m pip freeze --exclude-editable \
		| grep -v -i -E '^(torch|nvidia-|triton)'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) data/lake data/landing data/lance data/knowledge data/control data/dagster data/simulator

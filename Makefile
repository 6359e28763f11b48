# Every target sets up its own virtual environment first (idempotent: it reinstalls only when
# pyproject.toml changes), so `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# `make bench` only: simglucose, the speed peer of the sensor chain, in its own environment (its
# pins clash with ours); reinstalled when this file changes, as .venv is when pyproject.toml does.
# simglucose 0.2.11 imports pkg_resources, which setuptools 81 drops. A failed install does not
# stop the bench: it says so and the bench runs without the peer.
BENCH_VENV  := .venv-bench
BENCH_PY    := $(BENCH_VENV)/bin/python
BENCH_REQS  := simglucose==0.2.11 setuptools<81
BENCH_STAMP := $(BENCH_VENV)/.installed
PEER_DAYS   ?= 1.5

.PHONY: run test check test-deps bench fuzz lint format clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/cgmsim simulate

# What the tests need outside the venv (Debian's tshark): installed when missing and the machine
# can (root with apt); otherwise its tests are skipped with a line saying what to install.
test-deps:
	@scripts/install-test-deps

# The whole suite, on two workers (pytest-xdist): about 4 min on a 2-core machine.
test: $(STAMP) test-deps
	$(PY) -m pytest -n 2

# The inner loop: everything but the tests marked slow (separate processes, kill/resume,
# whole-session command-line runs, fuzzing campaigns), on two cores (pytest-xdist).
check: $(STAMP) test-deps
	$(PY) -m pytest -m "not slow" -n 2

$(BENCH_STAMP): Makefile
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet $(foreach r,$(BENCH_REQS),'$(r)')
	touch $(BENCH_STAMP)

bench: $(STAMP)
	@$(MAKE) --no-print-directory $(BENCH_STAMP) \
	  || echo "make bench: could not set up $(BENCH_VENV) for simglucose (see above);" \
	    "the bench runs without its peer" >&2
	BENCH_PEER_PYTHON=$(BENCH_PY) BENCH_PEER_DAYS=$(PEER_DAYS) $(PY) -m bench

# A longer fuzzing campaign than CI's smoke runs: reproducers (shrunk) go to out/fuzz-corpus.
# Over the BLE stack a core takes ~200 inputs/s instead of thousands: fewer iterations there.
FUZZ_ITERATIONS ?= 1000000
FUZZ_BLE_ITERATIONS ?= 20000
fuzz: $(STAMP)
	for t in decoder transmitter receiver; do \
	  $(VENV)/bin/cgmsim fuzz --target $$t --iterations $(FUZZ_ITERATIONS) --seed $${SEED:-0} \
	    --corpus out/fuzz-corpus || exit 1; \
	done
	for t in transmitter receiver; do \
	  $(VENV)/bin/cgmsim fuzz --target $$t --link ble --iterations $(FUZZ_BLE_ITERATIONS) \
	    --seed $${SEED:-0} --corpus out/fuzz-corpus || exit 1; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(BENCH_VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis

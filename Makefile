# Two commands: `make run` (set up + run the default pipeline) and `make test` (set up + test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIPELINE ?=
STAMP  := $(VENV)/.installed
# test processes (pytest-xdist): each file's tests stay in one process (module fixtures run once),
# files handed out in the order tests/conftest.py gives (the end-to-end ones first). Three on two
# cores: the end-to-end tests wait on servers and fresh processes a third of the time (two
# processes kept 1.4 cores busy); 639 s against 676-683 s for two, in one tree on one day;
# four were slower again: 850 s against 785 s for three, in fresh clones of one commit
TEST_WORKERS ?= 3

.PHONY: run test lint setup clean ui bench gpu-check gpu-wheels sweep

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PIP_CONSTRAINT=requirements/constraints.txt $(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'
	@# pip compiles every module on one core (45 s here); on every core, 29 s. A file written for
	@# a newer Python than this one (pip skips it too) is no failure of the setup
	$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null 2>&1 || true
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/crnn run $(PIPELINE)

# the pipeline's sweep: block (digit-strings ships one): trials, the best through the gate
sweep: $(STAMP)
	$(BIN)/crnn sweep $(PIPELINE)

test: $(STAMP)
	@out=$$($(BIN)/lint-imports --no-cache 2>&1) && echo "the floors hold (lint-imports)" || { echo "$$out"; exit 1; }
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# every bench runs; the target fails if any of them does (a figure short of its limit)
bench: $(STAMP)
	status=0; \
	$(BIN)/python bench/preprocess_memory.py || status=1; \
	$(BIN)/python bench/score_bench.py || status=1; \
	$(BIN)/python bench/train_bench.py || status=1; \
	$(BIN)/python bench/startup_bench.py || status=1; \
	$(BIN)/python bench/integrity_bench.py || status=1; \
	$(BIN)/python bench/score_memory.py || status=1; \
	$(BIN)/python bench/redact_bench.py || status=1; \
	$(BIN)/python bench/cluster_scale.py || status=1; \
	$(BIN)/python bench/drift_bench.py || status=1; \
	$(BIN)/python bench/typed_digits.py || status=1; \
	exit $$status

# The GPU check runs on a bare GPU image: python3 from PATH, no virtualenv, no package index (the
# core's missing dependencies travel as wheels in .whl/: `make gpu-wheels` where a registry is).
GPU_OUT ?= bench/results/gpu
GPU_ARGS ?=
gpu-check:
	bash bench/gpu_check.sh $(GPU_OUT) $(GPU_ARGS)

gpu-wheels:
	bash bench/gpu_check.sh --download-wheels

lint: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check crnn flows tests
	$(BIN)/ruff format --check crnn flows tests
	$(BIN)/mypy crnn flows

ui: $(STAMP)
	$(BIN)/crnn ui

clean:
	rm -rf $(VENV) workspace .pytest_cache

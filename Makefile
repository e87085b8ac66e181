# Two commands matter: `make demo` (offline demo: sandbox + Dagster UI) and `make test`.
# Both create or refresh the local virtualenv; nothing is reinstalled when pyproject.toml is unchanged.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test benchmarks bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m harmony_pipeline.demo

test: $(STAMP)
	$(BIN)/pytest

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/matching_eval.py

# Throughput benchmarks (issue 11), never part of `make test`: writes benchmarks/RESULTS.md (< 20 min on 2 cores).
# `make bench BENCH_ARGS=--quick` checks every script at a small size.
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf .demo .pytest_cache .hypothesis build *.egg-info

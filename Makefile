# Developer shortcuts. `make bench` runs the benchmarks against the peers (needs the `bench`
# extra: pip install torch first, then pip install -e ".[bench]"; see benchmarks/RESULTS.md).

PYTHON ?= $(shell test -x .venv-bench/bin/python && echo .venv-bench/bin/python || echo python)

.PHONY: bench bench-quick bench-start

# the whole comparison; rewrites benchmarks/RESULTS.md (and prints the README snippet there)
bench:
	$(PYTHON) -m benchmarks

bench-quick:
	$(PYTHON) -m benchmarks --quick

# start-up only: import time and the fixed CPU a fit pays for tracking
bench-start:
	$(PYTHON) -m benchmarks.bench_start

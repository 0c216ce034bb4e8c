# `make test` and `make demo` work on a machine with nothing installed but Python 3.11:
# they create (or reuse) the virtual environment in .venv and install the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.xvision-installed
DEMO_STORE ?= demo-store

.PHONY: setup test test-all demo bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch/torchvision first, exactly as pinned: pip takes them from this machine's wheel cache.
	$(BIN)/python -m pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/pytest

test-all: setup
	$(BIN)/pytest -m ''

demo: setup
	# The demo builds its own store from scratch (~20 s): a store left by an older version may hold
	# another encoder's vectors, which `xvision index` rightly refuses to mix.
	rm -rf $(DEMO_STORE)
	$(BIN)/xvision index ../shared/data/worldcereal-hesbaye --grid 10 --store $(DEMO_STORE)
	$(BIN)/xvision history grid10-32631-664400-5611720 --store $(DEMO_STORE)
	$(BIN)/xvision similar grid10-32631-664400-5611720 --date 2021-06-01 --store $(DEMO_STORE) -k 5
	$(BIN)/xvision export --store $(DEMO_STORE) --format csv --out $(DEMO_STORE)/records.csv

# Every benchmark with its defaults (1M-vector search and store: ~45 min on 2 cores), written to
# benchmarks/RESULTS.md with the machine; bench-quick uses smaller sizes (~5 min).
bench: setup
	$(BIN)/python benchmarks/report.py

bench-quick: setup
	$(BIN)/python benchmarks/report.py --quick

clean:
	rm -rf $(VENV) $(DEMO_STORE) .pytest_cache

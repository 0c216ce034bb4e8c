# `make test` and `make demo` work on a machine with nothing installed but Python 3.11:
# they create (or reuse) the virtual environment in .venv and install the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.xvision-installed
DEMO_STORE ?= demo-store

.PHONY: setup test test-all demo demo-store demo-model demo-cli screenshots bench bench-quick clean

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

# --- the demo: `make demo` builds the store from data/ (the repository's own real samples), uses the
# committed tiny model (or trains one when it is missing), starts the app and prints its URL. The
# store is rebuilt only when the demo data or the indexing code changed: its key (a hash of both)
# is kept in DEMO_STORE/.demo-key.
DEMO_MODEL ?= models/tiny-demo
DEMO_PORT ?= 8501
FLANDERS := data/worldcereal-flanders
HESBAYE := data/worldcereal-hesbaye
DEMO_INPUTS = $(sort $(wildcard $(FLANDERS)/*.tif $(FLANDERS)/*.gpkg $(HESBAYE)/*.tif))
DEMO_CODE = pyproject.toml $(sort $(wildcard indexer/*.py indexer/core/*.py xvision_model/encoders/*.py))
DEMO_KEY = $(shell cat $(DEMO_INPUTS) $(DEMO_CODE) | sha256sum | cut -c1-16)

demo: demo-store
	@if [ -f $(DEMO_MODEL)/model_card.json ]; then \
		echo "==> demo model: $(DEMO_MODEL) (committed; rebuild it with make demo-model)"; \
	else \
		echo "==> demo model missing: training it (about 13 minutes on 2 idle CPU cores)"; \
		$(MAKE) --no-print-directory demo-model; \
	fi
	@echo "==> starting the app"
	$(BIN)/xvision ui --store $(DEMO_STORE) --model $(DEMO_MODEL) --port $(DEMO_PORT)

demo-store: setup
	@if [ "$$(cat $(DEMO_STORE)/.demo-key 2>/dev/null)" = "$(DEMO_KEY)" ]; then \
		echo "==> demo store $(DEMO_STORE) is up to date (key $(DEMO_KEY))"; \
	else \
		echo "==> building the demo store $(DEMO_STORE) from data/ (key $(DEMO_KEY))"; \
		rm -rf $(DEMO_STORE).tmp && \
		$(BIN)/xvision index $(FLANDERS) --parcels $(FLANDERS)/parcels_Flanders31UES.gpkg --store $(DEMO_STORE).tmp && \
		$(BIN)/xvision index $(HESBAYE) --grid 10 --store $(DEMO_STORE).tmp && \
		echo "$(DEMO_KEY)" > $(DEMO_STORE).tmp/.demo-key && \
		rm -rf $(DEMO_STORE) && mv $(DEMO_STORE).tmp $(DEMO_STORE); \
	fi

# Rebuilds the committed demo model reproducibly (seed 0, the default): the README's training
# command on a store of all three real samples in data/ (Hesbaye cells, BigEarthNet cells, the
# Flanders parcels over two seasons); training re-reads their chips from data/ for the spectral
# augmentation. It serves the demo store: same encoder.
BIGEARTHNET := data/bigearthnet-s2-examples
DEMO_TRAIN_STORE ?= demo-train-store
demo-model: setup
	rm -rf $(DEMO_TRAIN_STORE) $(DEMO_MODEL).tmp
	$(BIN)/xvision index $(HESBAYE) --grid 10 --store $(DEMO_TRAIN_STORE)
	$(BIN)/xvision index $(BIGEARTHNET) --grid 20 --store $(DEMO_TRAIN_STORE)
	$(BIN)/xvision index $(FLANDERS) --parcels $(FLANDERS)/parcels_Flanders31UES.gpkg --store $(DEMO_TRAIN_STORE)
	$(BIN)/xvision train --store $(DEMO_TRAIN_STORE) --out $(DEMO_MODEL).tmp
	# The resume checkpoint (optimizer state) is not part of the model.
	rm -rf $(DEMO_MODEL).tmp/checkpoint $(DEMO_MODEL) $(DEMO_TRAIN_STORE) && mv $(DEMO_MODEL).tmp $(DEMO_MODEL)

# The command-line tour of the demo store (no app).
demo-cli: demo-store
	$(BIN)/xvision history Flanders31UES-001 --store $(DEMO_STORE)
	$(BIN)/xvision similar Flanders31UES-001 --date 2019-05-16 --store $(DEMO_STORE) -k 5

# Screenshots of every page for the README, taken by the real-browser test.
screenshots: demo-store
	XVISION_SCREENSHOTS=docs/screenshots XVISION_UI_BROWSER_STORE=$(DEMO_STORE) $(BIN)/pytest tests/ui/test_browser.py -q

# Every benchmark with its defaults (1M-vector search and store: ~45 min on 2 cores), written to
# benchmarks/RESULTS.md with the machine; bench-quick uses smaller sizes (~5 min).
bench: setup
	$(BIN)/python benchmarks/report.py

bench-quick: setup
	$(BIN)/python benchmarks/report.py --quick

clean:
	rm -rf $(VENV) $(DEMO_STORE) $(DEMO_STORE).tmp $(DEMO_STORE)-uploads demo-train-store .pytest_cache

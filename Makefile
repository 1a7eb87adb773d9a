# One entry point per job. Every install step lives here, so a fresh machine needs nothing by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOGDIR ?= logs/demo
PORT ?= 6006
# localhost only unless asked: `make demo HOST=0.0.0.0` serves every interface.
HOST ?= localhost
DEMO_ARGS ?=

.PHONY: demo test chromium frontend bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# What the demo needs: the package and TensorFlow (CPU) to train the runs and read their checkpoints.
$(VENV)/.demo-installed: setup.py | $(PY)
	$(PY) -m pip install --quiet -e '.[demo]'
	touch $@

# Everything: every framework the tests write logs with, the test tools, the benchmarks' readers.
$(VENV)/.installed: setup.py requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Train the demo runs, then serve them with the plugin loaded until Ctrl-C.
demo: $(VENV)/.demo-installed
	$(PY) demo/train.py --logdir $(LOGDIR) $(DEMO_ARGS)
	@echo "Open http://$(HOST):$(PORT)/#stagnation (Ctrl-C stops TensorBoard)"
	$(VENV)/bin/tensorboard --logdir $(LOGDIR) --host $(HOST) --port $(PORT) --samples_per_plugin stagnation=0

# Debian's Chromium for the browser tests (Playwright is pointed at /usr/bin/chromium).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

test: $(VENV)/.installed chromium
	$(PY) -m pytest -q tests

# Rebuild the served bundle from frontend/ (needs Node and npm; pip install does not).
frontend:
	cd frontend && npm ci --no-audit --no-fund && npm run build

bench: $(VENV)/.installed
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info

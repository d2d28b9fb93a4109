# bn-inspect developer commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The Keras backend used by the demo and tests; tensorflow-cpu keeps the download small.
BACKEND_EXTRA ?= tf-cpu
PORT ?= 6006

.PHONY: setup demo examples tensorboard test test-jax bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[$(BACKEND_EXTRA),test]"

examples: setup
	$(BIN)/python examples/run_all.py

tensorboard: setup
	@echo "Open http://localhost:$(PORT)/#bn_inspect"
	$(BIN)/tensorboard --logdir logs --port $(PORT)

demo: examples tensorboard

test: setup
	bash .ci/ensure-chromium
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m bench.run_all

clean:
	rm -rf logs bench/out .pytest_cache

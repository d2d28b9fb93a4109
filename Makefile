# bn-inspect developer commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The Keras backend used by the demo and tests; tensorflow-cpu keeps the download small.
BACKEND_EXTRA ?= tf-cpu
PORT ?= 6006
# Tests that exercise the Keras backend, run a second time on JAX (see docs/compatibility.md).
JAX_TESTS := tests/test_probe.py tests/test_callback.py tests/test_population.py tests/test_recalibrate.py tests/test_custom_loop.py

.PHONY: setup setup-jax demo examples docs tensorboard lint format test test-jax screenshots bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[$(BACKEND_EXTRA),test]"

# run_all.py also saves what each example prints to logs/transcripts/, which the docs show.
EXAMPLES_DONE := logs/transcripts/.complete
EXAMPLE_INPUTS := $(shell find examples bn_inspect -name '*.py')

examples: setup
	$(BIN)/python examples/run_all.py && touch $(EXAMPLES_DONE)

$(EXAMPLES_DONE): $(EXAMPLE_INPUTS) | setup
	$(BIN)/python examples/run_all.py && touch $@

# The documentation site, into build/site: examples rerun when they or bn_inspect changed;
# --strict fails on a broken link, a missing page or a docstring reference that no longer resolves.
docs: setup $(EXAMPLES_DONE)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

tensorboard: setup
	@echo "Open http://localhost:$(PORT)/#bn_inspect"
	$(BIN)/tensorboard --logdir logs --port $(PORT)

demo: examples tensorboard

setup-jax: setup
	$(BIN)/pip install --quiet -e ".[jax]"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup-jax lint docs
	bash .ci/ensure-chromium
	$(BIN)/python -m pytest -q
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q $(JAX_TESTS)

test-jax: setup-jax
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q $(JAX_TESTS)

screenshots: setup  # refresh the pictures of the tab and the notebook widget (README and docs)
	bash .ci/ensure-chromium
	BN_INSPECT_SCREENSHOTS=examples/screenshots $(BIN)/python -m pytest -q tests/test_browser.py tests/test_browser_compare.py
	BN_INSPECT_NOTEBOOK_SCREENSHOT=docs/img/notebook.png $(BIN)/python -m pytest -q tests/test_jupyterlab.py

bench: setup
	$(BIN)/python -m bench.run_all

clean:
	rm -rf logs bench/out .pytest_cache build/site

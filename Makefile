# Every target does its own set-up: a fresh clone needs nothing but python3.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 5174
DATA   ?= memory
DATABASE ?=

.PHONY: run test lint fmt bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m server serve --host $(HOST) --port $(PORT) --data $(DATA) $(if $(DATABASE),--database $(DATABASE))

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check eventlog server tests bench
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format eventlog server tests bench
	$(VENV)/bin/ruff check --fix eventlog server tests bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Every target installs what it needs first, so `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
EMU    := tests/e2e/emulator
EMU_STAMP := $(EMU)/node_modules/.installed-stamp

.PHONY: install run test lint format bench emulator clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The Telegram Bot API emulator used by the end-to-end test (skipped when npm is missing).
emulator: $(EMU_STAMP)

$(EMU_STAMP): $(EMU)/package.json $(EMU)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(EMU) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	else echo "npm not found: the Telegram emulator test will be skipped"; fi

run: install
	$(PY) -m bot db upgrade
	$(PY) -m bot run

test: install emulator
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

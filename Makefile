# Every target bootstraps its own virtualenv on a fresh clone.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APP_STAMP := $(VENV)/.installed-app
SPARK_STAMP := $(VENV)/.installed-spark
# `make demo` on COMPANY_ACTIVITY_WAREHOUSE=spark:ROOT needs the spark extra too (and a Java 17+ runtime)
DEMO_STAMP := $(if $(filter spark:%,$(COMPANY_ACTIVITY_WAREHOUSE)),$(SPARK_STAMP),$(APP_STAMP))

LOCK := requirements/lock.txt
DEV_LOCK := requirements/dev.lock.txt
# the extras the container image ships (see Dockerfile); the dev lock holds every extra
IMAGE_EXTRAS := azure postgres

.PHONY: demo test lint typecheck unit bench clean lock

# Installs pinned by the dev lock file (as constraints: a dependency the lock does not know yet is still
# installed, unpinned, so a stale lock never breaks the install; `make lock` refreshes it).
# `make demo` installs the application and its web UI only; `make test` adds the dev tools.
$(VENV)/bin/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(APP_STAMP): pyproject.toml $(DEV_LOCK) | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -c $(DEV_LOCK) -e '.[ui]' \
	|| { echo "warning: $(DEV_LOCK) is stale (run make lock); installing without it" >&2; \
	     $(BIN)/python -m pip install --quiet -e '.[ui]'; }
	@touch $(APP_STAMP)

$(SPARK_STAMP): pyproject.toml $(DEV_LOCK) | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -c $(DEV_LOCK) -e '.[ui,spark]' \
	|| { echo "warning: $(DEV_LOCK) is stale (run make lock); installing without it" >&2; \
	     $(BIN)/python -m pip install --quiet -e '.[ui,spark]'; }
	@touch $(SPARK_STAMP) $(APP_STAMP)

$(STAMP): pyproject.toml $(DEV_LOCK) | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -c $(DEV_LOCK) -e '.[dev]' \
	|| { echo "warning: $(DEV_LOCK) is stale (run make lock); installing without it" >&2; \
	     $(BIN)/python -m pip install --quiet -e '.[dev]'; }
	@touch $(STAMP) $(APP_STAMP) $(SPARK_STAMP)

lock: $(STAMP)  ## re-resolve requirements/*.txt from pyproject.toml (UPGRADE=1: newest versions)
	$(BIN)/python -m pip install --quiet 'uv>=0.4'
	$(BIN)/uv pip compile pyproject.toml $(addprefix --extra ,$(IMAGE_EXTRAS)) --universal \
		--python-version 3.11 --generate-hashes --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) -o $(LOCK) --quiet
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal \
		--python-version 3.11 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) -o $(DEV_LOCK) --quiet

demo: $(DEMO_STAMP)  ## run the whole pipeline on embedded defaults (DuckDB + local lake + API simulator)
	$(BIN)/company-activity demo

test: lint typecheck unit  ## everything CI runs

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)  ## benchmarks (by hand; never part of make test)
	$(BIN)/python benchmarks/bench_build.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_ui.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

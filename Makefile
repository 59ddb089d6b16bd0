# The two commands of the README: `make demo` runs the product, `make test` passes the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8800

.PHONY: demo test lint bench lock clean

# Installs pin every package to constraints.txt: the versions the suite last passed with (`make lock` renews it).
$(STAMP): pyproject.toml setup.py src/phoneops/numbers/_blindhash.c constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/phoneops demo --port $(PORT)

# The suite runs on TEST_WORKERS pytest-xdist processes (3 suits 2 cores: many tests wait on subprocesses and
# HTTP); tests that cannot share the machine form one xdist group (tests/conftest.py). TEST_WORKERS=0 runs
# everything in this one process.
TEST_WORKERS ?= 3

test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench) $(wildcard deploy)
	$(BIN)/mypy src
	@# One formatting rule: the code is formatted by hand to ruff's line length; no formatter markers.
	@! grep -rn "fmt: \(skip\|off\|on\)" src tests $(wildcard bench) $(wildcard deploy) || (echo "lint: remove the formatter markers above"; false)

bench: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# The newest versions pyproject.toml allows, resolved in a throwaway venv and written to constraints.txt (its
# header kept). Then run `make test` and the benches before committing it (docs/operations.md, "Dependencies").
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[dev,bench]'
	{ grep '^#' constraints.txt; .lock-venv/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .lock-venv
	@echo "constraints.txt renewed: run make test and the benches, then commit it"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# The two commands: `make run` and `make test`. Both start with the same set-up.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest
FOREWARN_TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: setup test-setup run test lint test-sqlite test-postgres bench faults fuzz clean

setup:
	@sh .ci/setup system
	@$(MAKE) --no-print-directory $(VENV)/.installed

test-setup:
	@sh .ci/setup system test
	@$(MAKE) --no-print-directory $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt .ci/setup
	sh .ci/setup venv $(VENV)
	@touch $@

run: setup
	$(VENV)/bin/forewarn up

lint: test-setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Lint, then the whole suite on SQLite. Pytest's exit code 5 (no tests) fails.
test: lint test-sqlite

test-sqlite: test-setup
	env -u FOREWARN_TEST_DATABASE_URL $(PYTEST) -q

# Every test that touches the database (marker "db"), again on PostgreSQL.
test-postgres: test-setup
	FOREWARN_TEST_DATABASE_URL=$(FOREWARN_TEST_DATABASE_URL) $(PYTEST) -q -m db

# The intake, alert fan-out and public pages benchmarks (bench/README.md): print their numbers,
# assert nothing.
bench: test-setup
	$(PY) bench/intake.py && $(PY) bench/fanout.py && $(PY) bench/public_pages.py

# The fault tests at full size (tests/faults; `make test` runs them short): print their numbers.
faults: test-setup
	FOREWARN_FAULTS_FULL=1 $(PYTEST) -q -s tests/faults

# The fuzz targets at 10,000 cases each (tests/fuzz; `make test` runs them short): not in CI.
fuzz: test-setup
	FOREWARN_FUZZ_EXAMPLES=10000 $(PYTEST) -q -s tests/fuzz

clean:
	rm -rf $(VENV) .pytest_cache

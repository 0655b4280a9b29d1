# The two commands: `make run` and `make test`. Both start with the same set-up.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest
FOREWARN_TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: setup test-setup run test lint test-sqlite test-postgres golden cwe-names bench faults fuzz clean

setup:
	@sh .ci/setup system
	@$(MAKE) --no-print-directory $(VENV)/.installed

test-setup:
	@sh .ci/setup system test
	@$(MAKE) --no-print-directory $(VENV)/.installed $(VENV)/.validators

$(VENV)/.installed: pyproject.toml constraints.txt .ci/setup
	sh .ci/setup venv $(VENV)
	@touch $@

# The outside consumers the tests run our exports through (osv.dev's library, BSI's CSAF
# validator), each in a place of its own inside the venv's folder.
$(VENV)/.validators: tests/csaf/package.json tests/csaf/package-lock.json tests/osv_consumer/requirements.txt .ci/setup $(VENV)/.installed
	sh .ci/setup validators $(VENV)
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

# Rewrite tests/golden/mail/ (every kind of mail, as composed today) after an intended change
# of wording; review it with `git diff tests/golden` (tests/golden/README.md).
golden: test-setup
	FOREWARN_GOLDEN_UPDATE=1 $(PYTEST) -q tests/test_golden_mail.py

# Rebuild app/disclosure/exports/schemas/cwe_names.json from the pinned csaf-validator-lib's CWE
# list (after changing its pin in tests/csaf/package.json; review with `git diff`).
cwe-names: test-setup
	node tests/csaf/cwe_names.mjs $(VENV)/csaf-validator/node_modules/@secvisogram/csaf-validator-lib \
		app/disclosure/exports/schemas/cwe_names.json

# The intake, alert fan-out, public pages and registry page benchmarks (bench/README.md), about 4
# minutes: each prints its numbers and records its headline figures; bench/results.py writes them
# as one table to bench/results.md and README.md. Asserts nothing: fails only if a benchmark could not run
# (after the others have run and the table of what was measured is written).
bench: test-setup
	@results=/tmp/forewarn-bench-results.jsonl; rm -f $$results; failed=""; \
	for script in intake fanout public_pages registry_page; do \
		FOREWARN_BENCH_RESULTS=$$results $(PY) bench/$$script.py || failed="$$failed $$script"; \
	done; \
	$(PY) bench/results.py $$results || failed="$$failed results"; \
	if [ -n "$$failed" ]; then echo "make bench: failed:$$failed" >&2; exit 1; fi

# The fault tests at full size (tests/faults; `make test` runs them short): print their numbers.
faults: test-setup
	FOREWARN_FAULTS_FULL=1 $(PYTEST) -q -s tests/faults

# The fuzz targets at 10,000 cases each (tests/fuzz; `make test` runs them short): not in CI.
fuzz: test-setup
	FOREWARN_FUZZ_EXAMPLES=10000 $(PYTEST) -q -s tests/fuzz

clean:
	rm -rf $(VENV) .pytest_cache

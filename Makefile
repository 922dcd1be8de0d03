# unidesk: `make run` starts the embedded default; `make test` runs the whole suite
# on both backends (SQLite + in-process bus, then PostgreSQL + Redis).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider --timeout=300

.PHONY: setup run test test-serial test-embedded test-redis schema bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/unidesk run

# The two backends run side by side: most of the suite waits on real peers (SIP, browsers,
# audio), so two passes at once take little more than the longer one. The embedded pass's
# output is kept in a file and shown after the PostgreSQL + Redis pass, which streams.
test: setup
	@log=$$(mktemp); \
	$(MAKE) --no-print-directory test-embedded >$$log 2>&1 & emb=$$!; \
	$(MAKE) --no-print-directory test-redis; red=$$?; \
	wait $$emb; e=$$?; \
	echo; echo "==== embedded backend (SQLite + in-process bus) ===="; cat $$log; rm -f $$log; \
	echo; echo "embedded: exit $$e; PostgreSQL + Redis: exit $$red"; \
	test $$e -eq 0 -a $$red -eq 0

# One backend after the other (half the load on the machine, about twice the time).
test-serial: setup
	$(MAKE) --no-print-directory test-embedded
	$(MAKE) --no-print-directory test-redis

test-embedded: setup
	UNIDESK_TEST_BACKEND=embedded $(PYTEST) $(PYTEST_ARGS)

test-redis: setup
	UNIDESK_TEST_BACKEND=redis $(PYTEST) $(PYTEST_ARGS)

# Regenerate docs/protocol.schema.json from the msgspec types.
schema: setup
	$(BIN)/python -m realtime.protocol > docs/protocol.schema.json

bench: setup
	$(BIN)/python load/bench_hub.py
	$(BIN)/python load/bench_acd.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

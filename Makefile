# unidesk: `make run` starts the embedded default; `make test` runs the whole suite
# on both backends (SQLite + in-process bus, then PostgreSQL + Redis).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider --timeout=300

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/unidesk run

# `make test`: the two backends' passes side by side, one pytest process each (much of the suite waits
# on real peers, so two passes at once take little more than the longer one). The embedded pass's
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

# `make test-parallel`: each backend's pass as two pytest processes on different test files, the four
# side by side (about 14 minutes instead of 25 on two cores). On two cores the load average reaches
# 10-19 and now and then an audio check misses its mark, so `make test` keeps two processes; use this
# on four cores or more. UNIDESK_TEST_SHARD gives each process of a pass its own part of the pass's
# port ranges (tests/conftest.py). Part 2 holds the browser, bridge, cross-worker SIP and transfer
# tests, part 1 all the others: each file is in exactly one part. Each process's output is shown whole
# when it ends (-Otarget); it fails if any of the four failed.
PART2 := tests/e2e tests/bridge $(wildcard tests/integration/test_sip_link*.py) tests/integration/test_sip_transfer.py
PART1 := tests $(addprefix --ignore=,$(PART2))
PARTS := embedded-1 embedded-2 redis-1 redis-2

.PHONY: setup run test test-serial test-embedded test-redis test-parallel $(addprefix test-,$(PARTS)) schema bench clean

test-parallel: setup
	@$(MAKE) --no-print-directory -k -j4 -Otarget $(addprefix test-,$(PARTS)); s=$$?; \
	echo; if [ $$s -eq 0 ]; then echo "make test-parallel: all four parts passed"; \
	else echo "make test-parallel: FAILED (the parts with errors are named above)"; fi; exit $$s

# One part of one backend: test-embedded-1, test-embedded-2, test-redis-1, test-redis-2.
$(addprefix test-,$(PARTS)): test-%: setup
	@echo "==== $(word 1,$(subst -, ,$*)) backend, part $(word 2,$(subst -, ,$*)) of 2 ===="
	UNIDESK_TEST_BACKEND=$(word 1,$(subst -, ,$*)) UNIDESK_TEST_SHARD=$(word 2,$(subst -, ,$*))/2 \
	  $(PYTEST) $(PART$(word 2,$(subst -, ,$*))) $(PYTEST_ARGS)

# Regenerate docs/protocol.schema.json from the msgspec types.
schema: setup
	$(BIN)/python -m realtime.protocol > docs/protocol.schema.json

bench: setup
	$(BIN)/python load/bench_hub.py
	$(BIN)/python load/bench_acd.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

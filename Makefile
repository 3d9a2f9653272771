# Two commands on a fresh machine: `make run` serves the bank example, `make test` runs
# everything CI runs. Both build .venv from nothing with packages from PyPI.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PLUGIN := tests/engine_plugin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(PLUGIN)/pyproject.toml | cksum | cut -d' ' -f1)
CODE   := src tests benchmarks

.PHONY: install test lint typecheck docs dist chromium pgbouncer run bench bench-dcb bench-sync bench-pydantic bench-partitions bench-http bench-console console-screenshots bench-personal bench-archive bench-growth soak clean

install: $(STAMP)

# The test environment also holds a third party's engine (tests/engines use it): a package
# of its own that registers itself by entry point, as any other would.
$(STAMP): pyproject.toml $(PLUGIN)/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]' -e $(PLUGIN)
	rm -f $(VENV)/.installed-*
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

# The documentation site, built strictly (a broken link or reference fails); its code samples
# run in the test suite (tests/docs).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The wheel and the sdist in dist/, as `python -m build` makes them (in an isolated build
# environment with hatchling from PyPI); tests/cli/test_package.py installs such a wheel.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

# The browser tests (tests/http/test_browser.py) drive Debian's chromium, installed here when
# it is missing (CI runs as root). Four worker processes, each taking whole test files (their
# module fixtures, such as a built wheel, are made once): the suite mostly waits, on fsync,
# on servers starting and on brokers, so four overlap well on two cores (396 s serially,
# 213 s so here). Every test makes its own schema, files, ports and broker names. Tests
# marked `serial` (they hold PostgreSQL transactions open and count what is held back, which
# other tests' transactions would change, or need too many of the server's connections) run
# alone afterwards.
test: lint typecheck docs chromium pgbouncer
	$(BIN)/pytest -n 4 --dist loadfile -m "not serial"
	$(BIN)/pytest -m serial

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Runners behind a transaction-pooling pooler (tests/projections/test_pooler.py) run through
# Debian's PgBouncer, installed here when missing.
pgbouncer:
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; }

run: $(STAMP)
	$(BIN)/facta serve

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[all,bench]'
	$(BIN)/python benchmarks/run.py

# Consistency boundaries (issue 21): facta beside eventsourcing's DCB recorders, in one run
# of about two minutes (benchmarks/dcb.py; memory, SQLite and PostgreSQL at 127.0.0.1).
bench-dcb: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[all,bench]'
	$(BIN)/python benchmarks/dcb.py

# The synchronous facade (issue 26): facta.sync beside the async Application, per command, on
# memory, SQLite and PostgreSQL at 127.0.0.1, in one run of about a minute.
bench-sync: $(STAMP)
	$(BIN)/python benchmarks/sync_facade.py

# The service over HTTP (issue 27): deposits and state reads beside GET /health with wrk (64
# connections; installed here when missing, as CI runs as root), on SQLite with one server
# process and on PostgreSQL with one and two (`facta serve --workers 2`), in about 3 minutes
# (benchmarks/http.py).
bench-http: $(STAMP)
	@command -v wrk >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python benchmarks/http.py

# pydantic models beside msgspec structs (issue 26): per-command and per-replayed-event cost
# of the same bank domain written with each, on memory and SQLite, in one run of about a
# minute (benchmarks/pydantic_codec.py).
bench-pydantic: $(STAMP)
	$(BIN)/python benchmarks/pydantic_codec.py

# Partitioned projections (issue 22): the catch-up rate of one projection in 8 partitions
# shared by 1, 2, 4 and 8 worker processes, I/O-bound and CPU-bound handlers, on PostgreSQL at
# 127.0.0.1, in one run of about three minutes (benchmarks/partitions.py).
bench-partitions: $(STAMP)
	$(BIN)/python benchmarks/partitions.py

# The console on a log of 1,000,000 events (issue 24): searching streams and a page of a
# stream's events, over real HTTP, on SQLite and PostgreSQL at 127.0.0.1 (benchmarks/console.py;
# the log is written once by a bulk path and kept for later runs).
bench-console: $(STAMP)
	$(BIN)/python benchmarks/console.py

# The console's screenshots in the docs (docs/operations/console/), taken by its browser tests.
console-screenshots: $(STAMP) chromium
	FACTA_CONSOLE_SCREENSHOTS=docs/operations/console $(BIN)/pytest -q tests/console/test_browser.py

# Personal data (issue 25): one field sealed with AES-GCM beside the same event in clear, on
# append and on load, on memory, SQLite and PostgreSQL at 127.0.0.1, in one run of about ten
# minutes (benchmarks/personal.py; results in benchmarks/PERSONAL-RESULTS.md).
bench-personal: $(STAMP)
	$(BIN)/python benchmarks/personal.py

# Archiving (issue 25): 90% of a 1,000,000-event log moved to cold storage on SQLite and
# PostgreSQL, read back byte for byte, the database's size before and after
# (benchmarks/archive.py; results in benchmarks/ARCHIVE-RESULTS.md).
bench-archive: $(STAMP)
	$(BIN)/python benchmarks/archive.py

# Cost against the log's size: logs of 1, 10 and 50 million bank events (eventsourcing at 1
# and 10 million beside facta) on SQLite and PostgreSQL at 127.0.0.1, bulk-filled once and
# kept under benchmarks/results and in bench_growth_* schemas (about 60 GB), each size
# measured in a fresh process: commands, loads, reads, projection catch-up, HTTP pages, bytes
# per event, memory (benchmarks/growth.py; results in benchmarks/GROWTH.md). Hours the first
# time (most of it filling the 50 million-event logs), about an hour once they are kept.
bench-growth: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[all,bench]'
	$(BIN)/python benchmarks/growth.py

# The long reliability runs (not in `make test`): ten minutes of fixed-rate mixed load with
# latency and memory required to stay flat, the kill-under-load campaign scaled up, 1,000
# rounds of racers on consistency boundaries on every engine, and the topology campaigns
# (failover, a cut network, a NATS node killed) with longer load, cut and more events.
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak --minutes 10 --rate 200
	FACTA_CRASH_KILLS=10 FACTA_CRASH_SECONDS=3 FACTA_STARTUP_TRIALS=100 $(BIN)/pytest -s tests/reliability
	FACTA_DCB_ROUNDS=1000 FACTA_DCB_WRITERS=32 $(BIN)/pytest -q tests/store/test_boundary_racers.py
	FACTA_TOPOLOGY_LOAD=20 FACTA_TOPOLOGY_CUT=45 FACTA_TOPOLOGY_STREAMS=1000 \
		$(BIN)/pytest -s -p no:randomly tests/topology

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache dist

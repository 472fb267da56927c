# coordinator-dagster: every target installs what it needs first (scripts/bootstrap.sh, a no-op
# once .venv matches uv.lock). Needs python3.11, git, make and the package registry.
#
#   make run      Dagster UI http://127.0.0.1:3000 + report API http://127.0.0.1:8000 (Ctrl-C stops)
#   make test     the test suite            (make test PYTEST_ARGS="-k lake -x")
#   make test-fast  the tests that start no server or subprocess (-m "not process"): the inner loop
#   make demo     a 2-day simulated competition in one process (make demo DEMO_ARGS="--days 1")
#   make bench    times `coordinator demo`  (make bench BENCH_ARGS="--runs 5")
#   make stop     stop a `make run` started elsewhere
#   make install  only install (.tools/uv, .venv)
#   make clean    remove .venv and .tools  (the lake stays; make clean-data removes .coordinator)

SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help install run stop test test-fast demo bench clean clean-data

VENV := .venv
PYTEST_ARGS ?=
DEMO_ARGS ?=
BENCH_ARGS ?=
# Every command runs through the launcher so that SIGINT/SIGTERM work even when make itself was
# started with them ignored (background jobs, some CI runners); --no-setsid keeps Ctrl-C reaching it.
LAUNCH := python3 scripts/launch.py --no-setsid

help:
	@sed -n '4,12s/^# \{0,1\}//p' Makefile

install:
	@scripts/bootstrap.sh

# install_sandbox.sh: bubblewrap, the model workers' sandbox (a no-op once installed).
run:
	@scripts/install_sandbox.sh
	@$(LAUNCH) scripts/run.sh

stop:
	@scripts/stop.sh

# pytest exit 5 means it collected no tests: a failure here, never a silent pass.
# install_browser.sh: Debian's chromium + chromedriver for tests/test_ui_browser.py (a no-op once
# installed; apt-get as root, about 12 s on a machine without them). install_sandbox.sh:
# bubblewrap, which the model runner's tests require (MODEL_SANDBOX=required). install_postgres.sh:
# PostgreSQL 15's binaries, from which tests/test_postgres_storage.py start a server of their own.
# install_redis.sh: redis-server, the celery broker tests/test_runs_elsewhere.py start.
test: install
	@scripts/install_browser.sh
	@scripts/install_sandbox.sh
	@scripts/install_postgres.sh
	@scripts/install_redis.sh
	@$(LAUNCH) $(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: FAILED: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

# No browser, no servers, no subprocesses: tests marked `process` (tests/conftest.py refuses an
# unmarked test that starts one) are left out.
test-fast: install
	@$(LAUNCH) $(VENV)/bin/python -m pytest -m "not process" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-fast: FAILED: pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

demo: install
	@$(LAUNCH) $(VENV)/bin/coordinator demo $(DEMO_ARGS)

bench: install
	@$(LAUNCH) $(VENV)/bin/python benchmarks/demo_benchmark.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tools

clean-data:
	rm -rf .coordinator

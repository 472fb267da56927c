"""Shared fixtures: a lake in tmp_path and the resources that point the assets at it; and the
guard that keeps the `process` marker honest."""

import contextlib
import datetime as dt
import platform
import socket
import subprocess
from collections.abc import Iterator

import pytest

from coordinator_dagster.contracts import default_contract
from coordinator_dagster.lake import memory
from coordinator_dagster.lake.store import Lake
from resources import ClockResource, InProcessModelRunner, LakeResource, SyntheticFeed

# A fixed historical hour: every test that runs the pipeline uses it, so results are reproducible.
HOUR = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
HOUR_KEY = "2026-11-20-10:00"


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def lake(home):
    return Lake(home, window_names=default_contract().aggregation.windows)


def pipeline_resources(home, now: dt.datetime, **overrides):
    resources = {
        "lake": LakeResource(home=str(home)),
        "contract": default_contract(),
        "feed": SyntheticFeed(subjects=["BTC", "ETH"], seed=7),
        "model_runner": InProcessModelRunner(timeout_seconds=5.0),
        "clock": ClockResource(fixed_now=now.isoformat()),
    }
    resources.update(overrides)
    return resources


@pytest.fixture
def resources(home):
    """Resources with the clock pinned three hours after HOUR: its rounds are all due and scorable."""
    return pipeline_resources(home, HOUR + dt.timedelta(hours=3))


# ---- PostgreSQL ------------------------------------------------------------------------------
# One real server for the whole session (tests/postgres_server.py), a fresh database per test.


@pytest.fixture(scope="session")
def postgres_server():
    from tests.postgres_server import find_binaries, postgres_server

    bin_dir = find_binaries()
    if bin_dir is None:
        reason = "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): scripts/install_postgres.sh installs Debian's postgresql-15"
        print(f"\nSKIPPED: {reason}")
        pytest.skip(reason)
    with postgres_server(bin_dir) as server:
        yield server


@pytest.fixture
def pg_url(postgres_server) -> str:
    """The URL of an empty database of its own on the session's PostgreSQL server."""
    return postgres_server.database()


# ---- the `process` marker --------------------------------------------------------------------
# `make test-fast` runs `-m "not process"` for the inner loop. A test that starts a subprocess or
# binds a socket without the marker fails here (in its setup, module fixtures included, and in its
# call), so the fast set cannot quietly grow slow again.


# Dagster's telemetry (on for a persistent instance) asks `platform` for the processor, which
# runs `uname -p` once and caches it: run it here, before any test, so it is nobody's subprocess.
platform.platform()


@contextlib.contextmanager
def _processes_only_if_marked(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("process") is not None:
        yield
        return

    def refuse(what: str):
        def refused(*args, **kwargs):
            raise RuntimeError(f"{item.nodeid} {what} but is not marked `process` (pytest.mark.process)")

        return refused

    saved = subprocess.Popen._execute_child, socket.socket.bind
    subprocess.Popen._execute_child = refuse("starts a subprocess")
    socket.socket.bind = refuse("binds a socket (starts a server)")
    try:
        yield
    finally:
        subprocess.Popen._execute_child, socket.socket.bind = saved


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    with _processes_only_if_marked(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with _processes_only_if_marked(item):
        return (yield)


@pytest.fixture
def looked_at(monkeypatch) -> list[str]:
    """Names of the tables whose files the lake's readers looked at (`memory.table_identity` calls), in order."""
    seen: list[str] = []
    real = memory.table_identity

    def counting(lake, name):
        seen.append(name)
        return real(lake, name)

    monkeypatch.setattr(memory, "table_identity", counting)
    return seen

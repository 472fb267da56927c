"""Answers built once per change of the in-memory tables they read (`api.prebuilt`): reused while
the files are unchanged, rebuilt after any write, and served by the routes with the same bytes a
per-request query gave."""

from __future__ import annotations

import asyncio

import httpx
import polars as pl
import pytest

from api.app import create_app
from api.prebuilt import Answer, Prebuilt, render
from api.routes.leaderboard import leaderboard_rows
from api.settings import ApiSettings
from coordinator_dagster.contracts import load_contract
from coordinator_dagster.lake.reader import LakeReader
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT
from tests.api_fixtures import CHECKPOINT_KEYS, leaderboard_frame, seed_extras, seed_lake, serve

NO_CACHE = {"cache-control": "no-cache"}


@pytest.fixture
def seeded(tmp_path):
    found = seed_lake(tmp_path / "home")
    seed_extras(found.lake)
    return found


def counting(tables: tuple[str, ...]) -> tuple[Answer, list[int]]:
    builds: list[int] = []

    def build(con, contract) -> int:
        builds.append(1)
        return con.execute("SELECT count(*) FROM models").fetchone()[0] + 100 * len(builds)

    return Answer("counted", tables, build), builds


def test_an_answer_is_built_once_per_change_of_its_tables(seeded) -> None:
    reader = LakeReader(seeded.lake, window_recheck=0.0)
    store = Prebuilt(reader, load_contract())
    answer, builds = counting(("models",))
    try:
        assert store.current(answer) is None  # nothing built yet
        first = store.build(answer)
        assert store.current(answer) == first and store.build(answer) == first
        assert len(builds) == 1
        # Another table changing leaves it as it is.
        seeded.lake.write("leaderboard", leaderboard_frame(version=3))
        assert store.current(answer) == first  # only its own tables' files are compared
        assert store.build(answer) == first and len(builds) == 1
        assert store.current(answer) == first
        # Its own table rewritten with one model fewer: built again, from the new copy.
        models = seeded.lake.read_all("models")
        seeded.lake.write("models", models.head(models.height - 1))
        assert store.current(answer) is None
        again = store.build(answer)
        assert len(builds) == 2 and again == models.height - 1 + 200
    finally:
        reader.close()


def test_an_hourly_table_found_changed_stays_changed_until_it_is_loaded(seeded) -> None:
    """The snapshots' files are listed at most every `window_recheck` seconds; a change seen by a
    check must not be forgotten by the next check within that time (the answers' fast path checks,
    then a worker thread loads)."""
    reader = LakeReader(seeded.lake, window_recheck=3600.0)
    try:
        snapshots = seeded.lake.read_all("snapshots")
        hour = snapshots["period_start"].min()
        before = reader.versions(("snapshots",))
        reader.identities.forget()  # as after the recheck interval
        seeded.lake.write("snapshots", snapshots.filter(pl.col("period_start") == hour).head(1), hour.strftime(WINDOW_KEY_FORMAT))
        assert not reader.is_current()
        assert not reader.is_current()  # asked again within the interval: still out of date
        reader.refresh()
        assert reader.is_current() and reader.versions(("snapshots",)) == (before[0] + 1,)
        count = reader.cursor().execute("SELECT count(*) FROM snapshots").fetchone()[0]
        assert count == seeded.lake.read_all("snapshots").height
    finally:
        reader.close()


def test_a_table_read_from_files_is_never_stored(seeded) -> None:
    reader = LakeReader(seeded.lake, in_memory=("models",), window_recheck=0.0)
    store = Prebuilt(reader, load_contract())
    answer, builds = counting(("models", "leaderboard"))  # leaderboard: on its files here
    try:
        store.build(answer)
        store.build(answer)
        assert len(builds) == 2 and store.current(answer) is None
    finally:
        reader.close()


@pytest.mark.process
def test_routes_answer_prebuilt_bytes_and_follow_writes(seeded) -> None:
    lake = seeded.lake
    app = create_app(ApiSettings(home=lake.home))
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        with app.state.reader.cursor() as con:
            expected = leaderboard_rows(con, app.state.contract, include_ensembles=False)
        board = client.get("/reports/leaderboard", headers=NO_CACHE)
        assert board.status_code == 200 and board.headers["content-type"] == "application/json"
        assert [row["model_id"] for row in board.json()] == [row["model_id"] for row in expected]
        # The leaderboard rebuilt by a run: the next request (no cache) shows it.
        lake.write("leaderboard", leaderboard_frame(version=7))
        rebuilt = client.get("/reports/leaderboard", headers=NO_CACHE).json()
        assert max(row["prediction_count"] for row in rebuilt) == 307

        # A checkpoint confirmed: its status in the dashboard's list and its emission follow.
        checkpoint = f"CKP-{CHECKPOINT_KEYS[1]}"
        listed = {c["id"]: c for c in client.get("/reports/checkpoints", headers=NO_CACHE).json()}
        assert listed[checkpoint]["status"] == "PENDING"
        lake.append_event(
            "checkpoint_events",
            pl.DataFrame({"checkpoint_id": [checkpoint], "event_at": [seeded.end], "status": ["SUBMITTED"], "tx_hash": ["t"], "caller": ["x"]}),
        )
        listed = {c["id"]: c for c in client.get("/reports/checkpoints", headers=NO_CACHE).json()}
        assert listed[checkpoint]["status"] == "SUBMITTED"
        assert client.get(f"/reports/checkpoints/{checkpoint}/emission", headers=NO_CACHE).json()["status"] == "SUBMITTED"
        assert [c["id"] for c in client.get("/reports/checkpoints?status=SUBMITTED&limit=1", headers=NO_CACHE).json()] == [checkpoint]
        assert client.get("/reports/checkpoints/CKP-none/emission", headers=NO_CACHE).status_code == 404


def test_render_writes_non_finite_numbers_as_null() -> None:
    assert render({"a": float("nan"), "b": [float("inf"), 1.5], "c": "é"}) == '{"a":null,"b":[null,1.5],"c":"é"}'.encode()


def test_a_missed_answer_is_built_off_the_event_loop(seeded) -> None:
    """The route helper builds in a worker thread: the event loop's thread never runs DuckDB."""
    import threading

    from api.prebuilt import prebuilt

    threads: list[str] = []

    def build(con, contract) -> str:
        threads.append(threading.current_thread().name)
        return "built"

    answer = Answer("thread", ("models",), build)
    reader = LakeReader(seeded.lake)

    class Request:
        class app:
            class state:
                prebuilt = Prebuilt(reader, load_contract())

    try:
        loop_thread = threading.current_thread().name
        assert asyncio.run(prebuilt(Request, answer)) == "built"
        assert threads and threads[0] != loop_thread
        assert asyncio.run(prebuilt(Request, answer)) == "built" and len(threads) == 1
    finally:
        reader.close()

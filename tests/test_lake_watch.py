"""File events tell the API's reader when to look at the lake (`coordinator_dagster.lake.watch`,
`memory.Identities`): a write is seen by the very next query, and while nothing is written no
file is looked at."""

from __future__ import annotations

import datetime as dt
import sys
import threading

import polars as pl
import pytest

from coordinator_dagster.lake import memory
from coordinator_dagster.lake.reader import LakeReader
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.lake.watch import TableWatch
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT
from tests.api_fixtures import leaderboard_frame, seed_extras, seed_lake
from tests.test_lake_memory import same_as_files

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def test_nothing_is_looked_at_until_a_file_changes_and_then_only_that_table(tmp_path, looked_at) -> None:
    seeded = seed_lake(tmp_path / "home")
    seed_extras(seeded.lake)
    now = [0.0]
    reader = LakeReader(seeded.lake)
    reader._memory.clock = lambda: now[0]
    try:
        assert reader.identities.watches("leaderboard") and reader.identities.watches("snapshots")
        reader.cursor().close()
        looked_at.clear()
        for _ in range(20):
            assert reader.is_current()
            reader.cursor().close()
        assert looked_at == []
        seeded.lake.write("leaderboard", leaderboard_frame(1))
        # No time passes: the event, queued by the rename itself, is what makes it look.
        assert not reader.is_current()
        rows = reader.cursor().execute("SELECT max(prediction_count) FROM leaderboard").fetchone()
        assert set(looked_at) == {"leaderboard"}
        assert rows == seeded.lake.query("SELECT max(prediction_count) AS n FROM raw_leaderboard").rows()[0]
        same_as_files(seeded.lake, reader)
        # Past the recheck interval the files are compared even without an event (a network
        # file system reports only this host's writes).
        looked_at.clear()
        reader.cursor().close()
        assert looked_at == []
        now[0] += memory.WATCHED_RECHECK_SECONDS
        reader.cursor().close()
        assert "leaderboard" in looked_at
    finally:
        reader.close()


def test_a_rewritten_hour_and_a_new_hour_are_seen_at_once(tmp_path, looked_at) -> None:
    seeded = seed_lake(tmp_path / "home")
    seed_extras(seeded.lake)
    now = [0.0]
    reader = LakeReader(seeded.lake)
    reader._memory.clock = lambda: now[0]  # frozen: only the file events can say "look"
    try:
        count = lambda: reader.cursor().execute("SELECT count(*) FROM snapshots").fetchone()[0]  # noqa: E731
        before = count()
        snapshots = seeded.lake.read_all("snapshots")
        hour = snapshots["period_start"].min()
        in_hour = snapshots.filter(pl.col("period_start") == hour)
        looked_at.clear()
        seeded.lake.write("snapshots", in_hour.head(1), hour.strftime(WINDOW_KEY_FORMAT))
        assert count() == before - in_hour.height + 1
        # Only the rewritten hour's file was looked at again, and the identity is the full listing's.
        assert looked_at == []
        assert reader.identities("snapshots") == memory.table_identity(seeded.lake, "snapshots")
        # An hour folder that did not exist (and a day folder) are watched as they appear.
        later = snapshots["period_start"].max() + dt.timedelta(days=2)
        seeded.lake.write("snapshots", in_hour.head(2).with_columns(pl.lit(later).alias("period_start")), later.strftime(WINDOW_KEY_FORMAT))
        assert count() == before - in_hour.height + 3
        seeded.lake.write("snapshots", in_hour.head(3).with_columns(pl.lit(later).alias("period_start")), later.strftime(WINDOW_KEY_FORMAT))
        assert count() == before - in_hour.height + 4
        same_as_files(seeded.lake, reader)
    finally:
        reader.close()


def test_a_table_without_files_is_seen_when_it_gains_its_first(tmp_path) -> None:
    lake = Lake(tmp_path / "home")
    now = [0.0]
    reader = LakeReader(lake)
    reader._memory.clock = lambda: now[0]
    try:
        assert reader.cursor().execute("SELECT count(*) FROM snapshots").fetchone() == (0,)
        assert reader.is_current()
        seeded = seed_lake(tmp_path / "home")
        seed_extras(seeded.lake)
        same_as_files(lake, reader)
        assert reader.cursor().execute("SELECT count(*) FROM snapshots").fetchone()[0] > 0
    finally:
        reader.close()


def test_the_watch_reports_the_table_of_each_event_and_follows_new_folders(tmp_path) -> None:
    root = tmp_path / "lake"
    (root / "a").mkdir(parents=True)
    watch = TableWatch.create(root, {"a": "a", "b": "b"})
    assert watch is not None
    try:
        assert not watch.drain()
        (root / "a" / "x.parquet").write_bytes(b"1")
        assert set(watch.drain()) == {"a"}
        assert not watch.drain()
        (root / "b").mkdir()  # a table's folder appearing after the watch began
        assert set(watch.drain()) == {"b"}
        (root / "b" / "date=1").mkdir()
        assert set(watch.drain()) == {"b"}
        (root / "b" / "date=1" / "f").write_bytes(b"2")
        assert set(watch.drain()) == {"b"}
        (root / "elsewhere").mkdir()  # not a watched table's folder
        (root / "elsewhere" / "f").write_bytes(b"3")
        assert not watch.drain()
    finally:
        watch.close()


def test_concurrent_askers_never_keep_an_identity_older_than_an_event(tmp_path) -> None:
    seeded = seed_lake(tmp_path / "home")
    seed_extras(seeded.lake)
    reader = LakeReader(seeded.lake)
    stop = threading.Event()
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            while not stop.is_set():
                reader.cursor(wait=False).execute("SELECT count(*) FROM leaderboard").fetchone()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for version in range(1, 15):
            seeded.lake.write("leaderboard", leaderboard_frame(version))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    try:
        assert errors == []
        same_as_files(seeded.lake, reader)  # after the last write, the next query sees it
    finally:
        reader.close()

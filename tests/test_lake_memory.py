"""The API reader's in-memory copies of the small lake tables (`coordinator_dagster.lake.memory`):
every query over them answers what the files hold, right after any write."""

from __future__ import annotations

import datetime as dt

import polars as pl

from coordinator_dagster.lake.reader import LakeReader
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT
from tests.api_fixtures import CHECKPOINT_KEYS, leaderboard_frame, seed_extras, seed_lake

QUERIES = {
    "leaderboard": "SELECT * FROM leaderboard ORDER BY model_id",
    "models": "SELECT * FROM models ORDER BY model_id",
    "checkpoints": "SELECT * FROM checkpoints ORDER BY checkpoint_id",
    "checkpoint_events": "SELECT * FROM checkpoint_events ORDER BY event_at",
    "snapshots": "SELECT * FROM snapshots ORDER BY period_start, model_id",
}


def same_as_files(lake: Lake, reader) -> None:
    """Every small table read through the reader equals the same query over the files."""
    files = lake.connect()
    try:
        for name, sql in QUERIES.items():
            cursor = reader.cursor()
            assert cursor.execute(sql).fetchall() == files.execute(sql).fetchall(), name
            assert [d[0] for d in cursor.description] == [d[0] for d in files.execute(sql).description], name
            cursor.close()
    finally:
        files.close()


def test_small_tables_are_answered_from_memory_and_follow_every_write(tmp_path) -> None:
    seeded = seed_lake(tmp_path / "home")
    seed_extras(seeded.lake)
    lake = seeded.lake
    reader = LakeReader(lake, window_recheck=0.0)  # hourly tables looked at on every use
    try:
        views = dict(reader.cursor().execute("SELECT view_name, sql FROM duckdb_views() WHERE view_name LIKE 'raw_%'").fetchall())
        for name in QUERIES:
            assert "memory_" in views[f"raw_{name}"] and "read_parquet" not in views[f"raw_{name}"], name
        assert "read_parquet" in views["raw_predictions"]  # millions of rows: left on the files
        same_as_files(lake, reader)

        before = reader.cursor()  # taken before the writes below; still usable after them
        lake.write("leaderboard", leaderboard_frame(version=7))
        lake.append_event(
            "checkpoint_events",
            pl.DataFrame({"checkpoint_id": [f"CKP-{CHECKPOINT_KEYS[1]}"], "event_at": [seeded.end], "status": ["SUBMITTED"], "tx_hash": ["t"], "caller": ["x"]}),
        )
        # One hour of snapshots replaced by fewer rows, as a re-score does: only that hour changes.
        snapshots = lake.read_all("snapshots")
        hour = snapshots["period_start"].min()
        lake.write("snapshots", snapshots.filter(pl.col("period_start") == hour).head(1), hour.strftime(WINDOW_KEY_FORMAT))
        assert reader.cursor().execute("SELECT max(prediction_count) FROM leaderboard").fetchone()[0] == 307
        assert reader.cursor().execute("SELECT status FROM checkpoints WHERE checkpoint_id = ?", [f"CKP-{CHECKPOINT_KEYS[1]}"]).fetchone() == ("SUBMITTED",)
        assert reader.cursor().execute("SELECT count(*) FROM snapshots WHERE period_start = ?", [hour]).fetchone()[0] == 1
        same_as_files(lake, reader)
        assert before.execute("SELECT max(prediction_count) FROM leaderboard").fetchone()[0] == 307
    finally:
        reader.close()


def test_a_table_that_gains_its_first_files_is_loaded(tmp_path) -> None:
    lake = Lake(tmp_path / "home")
    reader = LakeReader(lake, window_recheck=0.0)
    try:
        assert reader.cursor().execute("SELECT count(*) FROM snapshots").fetchone() == (0,)
        seeded = seed_lake(tmp_path / "home")
        seed_extras(seeded.lake)
        same_as_files(lake, reader)
        assert reader.cursor().execute("SELECT count(*) FROM snapshots").fetchone()[0] > 0
        # Hours added later are read one by one.
        later = seeded.end + dt.timedelta(hours=5)
        extra = seeded.lake.read_all("snapshots").head(2).with_columns(pl.lit(later).alias("period_start"))
        seeded.lake.write("snapshots", extra, later.strftime(WINDOW_KEY_FORMAT))
        same_as_files(lake, reader)
    finally:
        reader.close()


def test_hourly_tables_are_listed_at_most_once_per_recheck_interval(tmp_path) -> None:
    """Without file events (`watch=False`: another OS, object storage), an hourly table is polled."""
    seeded = seed_lake(tmp_path / "home")
    seed_extras(seeded.lake)
    now = [0.0]
    reader = LakeReader(seeded.lake, window_recheck=0.02, watch=False)
    reader._memory.clock = lambda: now[0]
    try:
        count = lambda: reader.cursor().execute("SELECT count(*) FROM snapshots").fetchone()[0]  # noqa: E731
        before = count()
        snapshots = seeded.lake.read_all("snapshots")
        hour = snapshots["period_start"].min()
        seeded.lake.write("snapshots", snapshots.filter(pl.col("period_start") == hour).head(1), hour.strftime(WINDOW_KEY_FORMAT))
        now[0] += 0.01
        assert count() == before  # within the interval: the copy may lag the rewrite
        now[0] += 0.02
        assert count() == before - snapshots.filter(pl.col("period_start") == hour).height + 1
        same_as_files(seeded.lake, reader)
    finally:
        reader.close()

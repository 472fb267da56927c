"""The lake's layout (hive folders ↔ hours) and the statuses its views derive, each in one place."""

import datetime as dt

import polars as pl

from coordinator_dagster.lake import layout
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.rounds import input_id, parse_round_stamp, round_stamp
from coordinator_dagster.statuses import CheckpointStatus, PredictionStatus
from tests.conftest import HOUR

UTC = dt.timezone.utc


def test_an_hour_and_its_folders_convert_both_ways():
    assert layout.window_folder(HOUR) == "date=2026-11-20/hour=10"
    assert layout.window_start_of_folders("date=2026-11-20", "hour=10") == HOUR
    for day, hour in (("date=2026-11-20", ".hour=10"), ("date=2026-13-01", "hour=10"), ("period=2026-11-20", "hour=10"), ("date=2026-11-20", "hour=1")):
        assert layout.window_start_of_folders(day, hour) is None, (day, hour)


def test_the_lake_writes_where_the_layout_says_and_reads_the_newest_hour_back(lake):
    assert lake.newest_window("snapshots") is None
    for hours in (0, 1, 30):
        key = (HOUR + dt.timedelta(hours=hours)).strftime("%Y-%m-%d-%H:%M")
        path = lake.write("predictions", lake.read("predictions", key), key)
        assert layout.window_start_of_file(path) == HOUR + dt.timedelta(hours=hours)
    lake.write("snapshots", lake.read("snapshots", "2026-11-21-16:00"), "2026-11-21-16:00")
    assert lake.newest_window("snapshots") == dt.datetime(2026, 11, 21, 16, tzinfo=UTC)

    base = lake.table_dir("predictions")
    (base / "date=2026-11-20" / "stray").mkdir()  # not an hour folder: left out
    found = layout.scan_window_folders(base)
    assert [f.key for f in found] == ["2026-11-20-10:00", "2026-11-20-11:00", "2026-11-21-16:00"]
    assert found[0].relative == "date=2026-11-20/hour=10/data.parquet"
    assert found[0].path == str(lake.partition_path("predictions", "2026-11-20-10:00"))
    # Only the hours overlapping [start, end); a whole day outside the range is not even listed.
    within = layout.scan_window_folders(base, HOUR + dt.timedelta(minutes=30), dt.datetime(2026, 11, 21, 16, tzinfo=UTC))
    assert [f.key for f in within] == ["2026-11-20-10:00", "2026-11-20-11:00"]
    assert layout.scan_window_folders(lake.table_dir("scores")) == []
    # The same files without their times, for checks that only compare files.
    (base / "date=2026-11-20" / "hour=1x").mkdir()
    assert layout.scan_window_files(base) == [f.path for f in found]
    assert layout.scan_window_files(lake.table_dir("scores")) == []


def test_hour_folders_are_listed_a_day_at_a_time_as_they_are_asked_for(lake, monkeypatch):
    for hours in (0, 1, 30):
        key = (HOUR + dt.timedelta(hours=hours)).strftime("%Y-%m-%d-%H:%M")
        lake.write("predictions", lake.read("predictions", key), key)
    base = lake.table_dir("predictions")
    (base / "date=2026-11-22").write_text("")  # a stray file named as a day: left out
    listed = []
    scandir = layout.os.scandir
    monkeypatch.setattr(layout.os, "scandir", lambda path: listed.append(str(path)) or scandir(path))
    hours = layout.iter_window_folders(base)
    assert next(hours).key == "2026-11-20-10:00"
    assert listed == [str(base), str(base / "date=2026-11-20")]  # the next day is not listed yet
    assert [f.key for f in hours] == ["2026-11-20-11:00", "2026-11-21-16:00"]
    assert [f.key for f in layout.scan_window_folders(base)] == ["2026-11-20-10:00", "2026-11-20-11:00", "2026-11-21-16:00"]


def event(checkpoint_id: str, at: dt.datetime, status: CheckpointStatus, tx_hash: str | None) -> pl.DataFrame:
    return pl.DataFrame({"checkpoint_id": [checkpoint_id], "event_at": [at], "status": [status.value], "tx_hash": [tx_hash], "caller": ["test"]})


def test_a_checkpoints_status_is_its_newest_event_and_its_transaction_the_newest_recorded(lake):
    assert lake.checkpoint_status("CKP-2026-11-15") is None
    lake.append_event("checkpoint_events", event("CKP-2026-11-15", HOUR, CheckpointStatus.SUBMITTED, None))
    lake.append_event("checkpoint_events", event("CKP-2026-11-15", HOUR + dt.timedelta(minutes=2), CheckpointStatus.CLAIMABLE, None))
    # Appended later, but an earlier event: order is by event time, not by file.
    lake.append_event("checkpoint_events", event("CKP-2026-11-15", HOUR + dt.timedelta(minutes=1), CheckpointStatus.SUBMITTED, "5sig"))
    lake.append_event("checkpoint_events", event("CKP-2026-11-08", HOUR, CheckpointStatus.PAID, "4sig"))
    assert lake.checkpoint_status("CKP-2026-11-15") is CheckpointStatus.CLAIMABLE
    state = lake.query("SELECT * FROM checkpoint_state ORDER BY checkpoint_id").to_dicts()
    assert [(s["checkpoint_id"], s["status"], s["tx_hash"]) for s in state] == [
        ("CKP-2026-11-08", "PAID", "4sig"),
        ("CKP-2026-11-15", "CLAIMABLE", "5sig"),
    ]
    assert state[1]["status_changed_at"] == HOUR + dt.timedelta(minutes=2)


def test_a_pending_prediction_with_a_score_reads_as_scored(lake):
    key = "2026-11-20-10:00"
    predictions = lake.read("predictions", key).clear()
    rows = [
        {"prediction_id": f"i/{m}", "input_id": "i", "scope_key": "btc-60s", "subject": "BTC", "model_id": m, "round_ts": HOUR,
         "resolvable_at": HOUR, "status": status, "value": 1.0, "output": None, "failed_reason": None, "latency_ms": None, "predicted_at": HOUR}
        for m, status in (("a", PredictionStatus.PENDING), ("b", PredictionStatus.PENDING), ("c", PredictionStatus.FAILED))
    ]
    lake.write("predictions", pl.concat([predictions, pl.DataFrame(rows, schema=predictions.schema)]), key)
    scores = lake.read("scores", key).clear()
    scored = {name: None for name in scores.columns} | {"prediction_id": "i/a", "input_id": "i", "model_id": "a", "round_ts": HOUR, "value": 0.5, "success": True}
    lake.write("scores", pl.concat([scores, pl.DataFrame([scored], schema=scores.schema)]), key)
    statuses = dict(lake.query("SELECT model_id, status FROM predictions ORDER BY model_id").iter_rows())
    assert statuses == {"a": "SCORED", "b": "PENDING", "c": "FAILED"}


def test_a_rounds_stamp_reads_back_as_the_round():
    round_ts = dt.datetime(2026, 11, 20, 10, 20, tzinfo=UTC)
    assert round_stamp(round_ts) == "2026-11-20T10:20:00Z"
    assert parse_round_stamp(round_stamp(round_ts)) == round_ts
    assert input_id("btc-60s", round_ts) == "btc-60s@2026-11-20T10:20:00Z"


def test_a_lake_of_another_version_keeps_the_same_layout(home):
    v2 = Lake(home, scoring_version="v2")
    assert v2.partition_path("scores", "2026-11-20-10:00").relative_to(v2.root).as_posix() == "scores/version=v2/date=2026-11-20/hour=10/data.parquet"

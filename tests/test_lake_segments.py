"""Hour partitions written as segments and compacted: readers (frame reads and the DuckDB views)
see the segments or the compacted file, never both and never half, while a writer appends and
compacts; idempotent; a whole-hour write of a segmented hour replaces its segments too."""

import datetime as dt
import threading

import polars as pl
import pytest

from coordinator_dagster.contracts import default_contract
from coordinator_dagster.lake import schemas, segments
from coordinator_dagster.lake.reader import fetch_with_retry
from coordinator_dagster.lake.store import Lake
from tests.conftest import HOUR, HOUR_KEY

ROWS_PER_BATCH = 7


def batch(n: int) -> pl.DataFrame:
    rows = []
    for i in range(ROWS_PER_BATCH):
        round_ts = HOUR + dt.timedelta(seconds=n)
        rows.append({name: None for name in schemas.PREDICTIONS.names()} | {
            "prediction_id": f"b{n}/m{i}", "input_id": f"b{n}", "scope_key": "btc-1s", "subject": "BTC", "model_id": f"m{i}",
            "round_ts": round_ts, "resolvable_at": round_ts, "status": "PENDING", "value": float(n), "predicted_at": round_ts,
        })
    return schemas.conform(pl.DataFrame(rows, schema=schemas.PREDICTIONS), schemas.PREDICTIONS, "predictions")


def whole_batches(ids: list[str]) -> int:
    """The number of batches a read holds, asserting it holds whole batches 0..n-1 exactly once."""
    assert len(ids) == len(set(ids)), "a row read twice (segments and compacted file both seen)"
    batches = {}
    for pid in ids:
        b = int(pid.split("/")[0][1:])
        batches[b] = batches.get(b, 0) + 1
    assert all(count == ROWS_PER_BATCH for count in batches.values()), "half a segment read"
    assert sorted(batches) == list(range(len(batches))), "a segment missing from the read"
    return len(batches)


@pytest.fixture
def store(home):
    return Lake.for_contract(home, default_contract())


def append(store, n):
    with store.partition_lock("predictions", HOUR_KEY):
        segments.append_segment(store.partition_path("predictions", HOUR_KEY), batch(n), schemas.PREDICTIONS, "predictions")


def compact(store):
    with store.partition_lock("predictions", HOUR_KEY):
        return segments.compact(store.root, store.partition_path("predictions", HOUR_KEY), schemas.PREDICTIONS, "predictions", ("round_ts", "model_id"))


def test_segments_then_one_compacted_file(store):
    for n in range(3):
        append(store, n)
    folder = store.partition_path("predictions", HOUR_KEY).parent
    assert len(segments.segment_names(folder)) == 3 and store.exists("predictions", HOUR_KEY)
    assert whole_batches(store.read("predictions", HOUR_KEY)["prediction_id"].to_list()) == 3
    assert compact(store) is True
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"]
    assert compact(store) is False  # idempotent: nothing to do
    assert whole_batches(store.read("predictions", HOUR_KEY)["prediction_id"].to_list()) == 3
    # A compacted hour that gains a segment keeps its rows (its file becomes the first segment).
    append(store, 3)
    assert "data.parquet" not in {p.name for p in folder.iterdir()}
    assert whole_batches(store.read("predictions", HOUR_KEY)["prediction_id"].to_list()) == 4
    assert not list((store.root / segments.STAGING).iterdir())  # staging folders are removed


def test_a_whole_hour_write_replaces_the_segments(store):
    for n in range(3):
        append(store, n)
    with store.partition_lock("predictions", HOUR_KEY):
        store.write("predictions", pl.concat([batch(0), batch(1)]), HOUR_KEY)
    folder = store.partition_path("predictions", HOUR_KEY).parent
    assert sorted(p.name for p in folder.iterdir()) == ["data.parquet"]
    assert whole_batches(store.read("predictions", HOUR_KEY)["prediction_id"].to_list()) == 2
    assert store.remove_windows("predictions", [HOUR_KEY]) == [HOUR_KEY]


def test_compaction_under_concurrent_reads_never_shows_both_or_half(store):
    append(store, 0)
    store.ensure_catalog()
    reader = store.reader()
    done = threading.Event()
    counts = {"frames": [], "sql": []}
    errors = []

    def read_frames():
        try:
            while not done.is_set():
                counts["frames"].append(whole_batches(store.read("predictions", HOUR_KEY)["prediction_id"].to_list()))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    def read_sql():
        try:
            while not done.is_set():
                _, rows = fetch_with_retry(reader.cursor(), "SELECT prediction_id FROM predictions")
                counts["sql"].append(whole_batches([r[0] for r in rows]))
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=read_frames), threading.Thread(target=read_sql)]
    for thread in threads:
        thread.start()
    try:
        for n in range(1, 41):  # append and compact in turn: every read overlaps some of both
            append(store, n)
            if n % 3 == 0:
                compact(store)
    finally:
        done.set()
        for thread in threads:
            thread.join(60)
    assert not errors, errors
    # Batches only ever grow: a read never goes back to fewer rows than an earlier one of its thread.
    for name, seen in counts.items():
        assert seen == sorted(seen), name
    # After the writer: every reader sees all 41 batches.
    assert whole_batches(store.read("predictions", HOUR_KEY)["prediction_id"].to_list()) == 41
    _, rows = fetch_with_retry(reader.cursor(), "SELECT prediction_id FROM predictions")
    assert whole_batches([r[0] for r in rows]) == 41
    reader.close()


def test_the_predictions_pages_read_an_open_hour_from_its_segments(store):
    import duckdb

    from api.deps import Pagination, TimeRange
    from api.prediction_pages import Filters, PredictionPager

    for n in range(3):
        append(store, n)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    pager = PredictionPager(store)
    rows, total = pager.page(con, Filters(None, None, None, None, TimeRange(None, None)), Pagination(limit=5, offset=0))
    assert total == 3 * ROWS_PER_BATCH and len(rows) == 5
    assert rows[0]["prediction_id"].startswith("b2/")  # newest round first
    compact(store)
    _, total = pager.page(con, Filters(None, None, None, None, TimeRange(None, None)), Pagination(limit=5, offset=0))
    assert total == 3 * ROWS_PER_BATCH

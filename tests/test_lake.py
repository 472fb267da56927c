"""The Parquet lake: schemas on write, atomic replacement, crash safety, DuckDB views."""

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import duckdb
import polars as pl
import pytest

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.store import Lake
from tests.interleave import ReadTurns

T0 = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
KEY = "2026-11-20-10:00"


def feed(n, price=100.0, start=T0):
    return pl.DataFrame(
        {
            "source": ["synthetic"] * n,
            "subject": ["BTC"] * n,
            "kind": ["candle"] * n,
            "granularity": ["1m"] * n,
            "ts_event": [start + dt.timedelta(minutes=i) for i in range(n)],
            "open": [price] * n,
            "high": [price] * n,
            "low": [price] * n,
            "close": [price + i for i in range(n)],
            "volume": [1.0] * n,
            "price": [price + i for i in range(n)],
        }
    )


def test_partition_path_is_hive_style(lake):
    path = lake.partition_path("feed_records", KEY)
    assert path.relative_to(lake.root).as_posix() == "feed_records/date=2026-11-20/hour=10/data.parquet"
    assert lake.partition_path("checkpoints", "2026-11-15").relative_to(lake.root).as_posix() == "checkpoints/period=2026-11-15/data.parquet"
    with pytest.raises(ValueError):
        lake.partition_path("feed_records", "not-a-key")


def test_write_applies_the_schema_in_order(lake):
    shuffled = feed(3).select(list(reversed(schemas.FEED_RECORDS.names())))
    lake.write("feed_records", shuffled, KEY)
    back = lake.read("feed_records", KEY)
    assert back.schema == schemas.FEED_RECORDS
    assert back.equals(feed(3))


def test_write_refuses_missing_extra_or_mistyped_columns(lake):
    with pytest.raises(schemas.SchemaError, match="missing columns \\['price'\\]"):
        lake.write("feed_records", feed(2).drop("price"), KEY)
    with pytest.raises(schemas.SchemaError, match="unexpected columns \\['extra'\\]"):
        lake.write("feed_records", feed(2).with_columns(pl.lit(1).alias("extra")), KEY)
    with pytest.raises(schemas.SchemaError, match="cannot cast"):
        lake.write("feed_records", feed(2).with_columns(pl.lit("abc").alias("close")), KEY)
    assert not lake.exists("feed_records", KEY)


def test_rewriting_a_partition_replaces_it(lake):
    lake.write("feed_records", feed(5), KEY)
    lake.write("feed_records", feed(5), KEY)
    assert lake.read("feed_records", KEY).height == 5
    lake.write("feed_records", feed(2, price=50.0), KEY)
    assert lake.read("feed_records", KEY)["open"].to_list() == [50.0, 50.0]
    assert lake.query("SELECT count(*) AS n FROM feed_records")["n"][0] == 2


def test_write_windows_splits_by_hour_and_clears_emptied_hours(lake):
    keys = ["2026-11-20-10:00", "2026-11-20-11:00"]
    lake.write_windows("feed_records", feed(90), "ts_event", keys)
    assert [lake.read("feed_records", k).height for k in keys] == [60, 30]
    lake.write_windows("feed_records", feed(10), "ts_event", keys)
    assert [lake.read("feed_records", k).height for k in keys] == [10, 0]
    with pytest.raises(ValueError, match="outside the partitions"):
        lake.write_windows("feed_records", feed(90), "ts_event", keys[:1])


def test_read_window_spans_hours_and_filters(lake):
    lake.write_windows("feed_records", feed(120), "ts_event", ["2026-11-20-10:00", "2026-11-20-11:00"])
    got = lake.read_window("feed_records", T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(minutes=90), column="ts_event")
    assert got.height == 60
    assert got["ts_event"].min() == T0 + dt.timedelta(minutes=30)


_WRITER = textwrap.dedent(
    """
    import datetime as dt, sys
    import polars as pl
    from coordinator_dagster.lake.store import Lake
    lake = Lake(sys.argv[1])
    n = 4_000_000
    t0 = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
    big = pl.DataFrame({
        "source": "synthetic", "subject": "BTC", "kind": "tick", "granularity": "1s",
        "ts_event": pl.datetime_range(t0, t0 + dt.timedelta(microseconds=n - 1), "1us", eager=True, time_zone="UTC"),
        "open": None, "high": None, "low": None,
        "close": pl.int_range(0, n, eager=True).cast(pl.Float64), "volume": 1.0,
        "price": pl.int_range(0, n, eager=True).cast(pl.Float64),
    })
    print("ready", flush=True)
    while True:
        lake.write("feed_records", big, "2026-11-20-10:00")
    """
)


def _state(pid: int) -> str:
    """A process's state letter from /proc (T: stopped by a signal)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.process
def test_a_writer_killed_mid_write_leaves_the_previous_partition_readable(lake, tmp_path):
    lake.write("feed_records", feed(7), KEY)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(lake.home)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        folder = lake.partition_path("feed_records", KEY).parent
        deadline = time.monotonic() + 120  # bounds a wait for the writer's next write
        # Kill it only while a temporary file exists, i.e. in the middle of a write: freeze it,
        # look, and let it go on if it was between writes, so a rename cannot slip in between.
        while True:
            assert time.monotonic() < deadline, "the writer never started a write"
            writer.send_signal(signal.SIGSTOP)
            while _state(writer.pid) not in ("T", "t"):
                assert time.monotonic() < deadline and writer.poll() is None, "the writer did not stop"
                time.sleep(0.001)
            if any(p.name.endswith(".tmp") for p in folder.iterdir()):
                break
            writer.send_signal(signal.SIGCONT)
            time.sleep(0.005)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        if writer.poll() is None:
            writer.kill()
    leftovers = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the kill should have left a partial temporary file behind"
    data = lake.read("feed_records", KEY)
    # Either the old partition or one complete rewrite: never a torn file.
    assert data.height in (7, 4_000_000)
    assert lake.query("SELECT count(*) AS n FROM feed_records")["n"][0] == data.height


def test_views_derive_statuses(lake):
    base = {
        "input_id": "btc@1", "scope_key": "btc-60s", "subject": "BTC", "round_ts": T0,
        "resolvable_at": T0 + dt.timedelta(minutes=1), "value": 0.5, "output": '{"value":0.5}',
        "failed_reason": None, "latency_ms": 1.0, "predicted_at": T0,
    }
    preds = pl.DataFrame(
        [
            {**base, "prediction_id": "p1", "model_id": "a", "status": "PENDING"},
            {**base, "prediction_id": "p2", "model_id": "b", "status": "PENDING"},
            {**base, "prediction_id": "p3", "model_id": "c", "status": "FAILED", "value": None, "failed_reason": "boom"},
        ],
        schema=schemas.PREDICTIONS,
    )
    lake.write("predictions", preds, KEY)
    score = pl.DataFrame(
        [{
            "prediction_id": "p1", "input_id": "btc@1", "scope_key": "btc-60s", "subject": "BTC", "model_id": "a",
            "round_ts": T0, "resolvable_at": T0 + dt.timedelta(minutes=1), "prediction_value": 0.5,
            "entry_price": 1.0, "resolved_price": 1.1, "profit": 0.1, "direction_up": True, "value": 0.1,
            "success": True, "failed_reason": None, "result": "{}",
        }],
        schema=schemas.SCORES,
    )
    lake.write("scores", score, KEY)
    statuses = dict(lake.query("SELECT prediction_id, status FROM predictions").iter_rows())
    assert statuses == {"p1": "SCORED", "p2": "PENDING", "p3": "FAILED"}

    checkpoint = pl.DataFrame(
        [{"checkpoint_id": "CKP-2026-11-15", "period_start": T0, "period_end": T0, "status": "PENDING",
          "ranking_key": "value", "model_count": 0, "entries": "[]", "emission": "{}"}],
        schema=schemas.CHECKPOINTS,
    )
    lake.write("checkpoints", checkpoint, "2026-11-15")
    assert lake.query("SELECT status FROM checkpoints")["status"].to_list() == ["PENDING"]
    for status in ("SUBMITTED", "CLAIMABLE"):
        lake.append_event(
            "checkpoint_events",
            pl.DataFrame([{"checkpoint_id": "CKP-2026-11-15", "event_at": dt.datetime.now(dt.timezone.utc),
                           "status": status, "tx_hash": "abc", "caller": "test"}], schema=schemas.CHECKPOINT_EVENTS),
        )
    assert lake.query("SELECT status FROM checkpoints")["status"].to_list() == ["CLAIMABLE"]
    assert lake.query("SELECT count(*) AS n FROM checkpoint_events")["n"][0] == 2


def test_empty_tables_have_typed_views(lake):
    frame = lake.query("SELECT * FROM leaderboard")
    assert frame.is_empty()
    assert "score_recent" in frame.columns


def test_catalog_file_opens_in_a_plain_duckdb_client(lake):
    lake.write("feed_records", feed(3), KEY)
    assert lake.refresh_catalog()
    assert lake.catalog_is_current()
    con = duckdb.connect(str(lake.catalog_path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM feed_records").fetchone()[0] == 3
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
    finally:
        con.close()
    # A new table gaining its first file makes the catalog stale until refreshed.
    lake.write("snapshots", schemas.empty(schemas.SNAPSHOTS), KEY)
    assert not lake.catalog_is_current()
    lake.ensure_catalog()
    assert lake.catalog_is_current()


@pytest.mark.process
def test_catalog_held_by_another_client_does_not_fail_the_writer(lake):
    lake.refresh_catalog()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(lake.catalog_path)!r}); print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lake.refresh_catalog() is False
    finally:
        holder.kill()
        holder.wait()


def _flock_waiters(path) -> int:
    """How many processes or threads the kernel shows blocked on an flock of `path` (/proc/locks)."""
    inode = os.stat(path).st_ino
    with open("/proc/locks") as locks:
        return sum(1 for line in locks if "->" in line and line.split()[6].rsplit(":", 1)[1] == str(inode))


@pytest.mark.process
def test_partition_lock_serializes_writers_of_one_partition(lake):
    # The holder keeps the lock until told to let go, so the order of events, not a sleep, decides.
    script = textwrap.dedent(
        f"""
        import sys
        from coordinator_dagster.lake.store import Lake
        lake = Lake({str(lake.home)!r})
        with lake.partition_lock("predictions", "2026-11-20-10:00"):
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    acquired = threading.Event()

    def second_writer() -> None:
        with lake.partition_lock("predictions", "2026-11-20-10:00"):
            acquired.set()

    try:
        assert holder.stdout.readline().strip() == "locked"
        # Writers of another partition never wait.
        with lake.partition_lock("predictions", "2026-11-20-11:00"):
            pass
        waiter = threading.Thread(target=second_writer, daemon=True)
        waiter.start()
        lock_file = next((lake.root / ".locks" / "predictions").glob("2026-11-20-1000.lock"))
        deadline = time.monotonic() + 60  # bounds a wait for the thread to reach the lock
        while _flock_waiters(lock_file) == 0:
            assert time.monotonic() < deadline and waiter.is_alive(), "the second writer never blocked on the lock"
            time.sleep(0.01)
        # The kernel has the second writer queued behind the holder: it waits, it did not get in.
        assert not acquired.is_set()
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0
        assert acquired.wait(timeout=60), "the second writer never got the lock after the first let go"
        waiter.join(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=10)


def test_reads_during_rewrites_see_one_whole_version(lake):
    """A partition replaced while it is read gives the old or the new rows, never an error.

    Reading by path let polars open the file twice and mix two versions (a page-size error or a
    panic, which is a BaseException); the lake reads through one open handle. The writer does a
    fixed number of rewrites, each followed by fresh reads; the reader never waits for the writer.
    """
    versions = [feed(60, price=100.0), feed(30, price=200.0)]
    lake.write("feed_records", versions[0], KEY)
    stop = threading.Event()
    turns = ReadTurns(readers=1)
    seen, errors = [], []

    def read() -> None:
        while not stop.is_set():
            try:
                frame = lake.read("feed_records", KEY)
                seen.append((frame.height, frame["open"][0]))
            except BaseException as exc:  # polars panics derive from BaseException
                errors.append(repr(exc))
            turns.finished(0)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for i in range(1, 21):
            lake.write("feed_records", versions[i % 2], KEY)
            turns.wait_for_fresh_reads()
    finally:
        stop.set()
        reader.join(timeout=60)
    assert errors == []
    assert set(seen) == {(60, 100.0), (30, 200.0)}
    assert len(seen) >= 40

"""The lake on S3-compatible object storage, against moto's S3 server on loopback: two homes on one
bucket stand for two hosts sharing a lake. A partition is committed as an immutable version plus
a pointer written last, so readers never see part of a write; re-writing replaces; removals and
events reach the other host; partition locks hold across hosts through PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import polars as pl
import pytest

from coordinator_dagster.lake import object_storage
from coordinator_dagster.lake.locks import advisory_key
from coordinator_dagster.lake.object_storage import ObjectStorage, parse_url
from coordinator_dagster.lake.storage import LocalDisk, storage_for
from coordinator_dagster.lake.store import Lake
from tests.api_fixtures import leaderboard_frame, seed_lake
from tests.s3_server import s3_server

pytestmark = pytest.mark.process  # a moto server subprocess

UTC = dt.timezone.utc
HOUR = "2026-11-20-10:00"


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture
def lake_env(s3, monkeypatch):
    """The variables of a lake on a fresh bucket, set in this process (as an operator sets them)."""
    env = s3.lake_environment(s3.bucket()) | {"LAKE_SYNC_SECONDS": "0"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    return env


def feed_rows(close: float, minutes: int = 3) -> pl.DataFrame:
    start = dt.datetime(2026, 11, 20, 10, tzinfo=UTC)
    return pl.DataFrame({
        "source": "synthetic", "subject": "BTC", "kind": "candle", "granularity": "1m",
        "ts_event": [start + dt.timedelta(minutes=m) for m in range(minutes)],
        "open": close, "high": close, "low": close, "close": close, "volume": 1.0, "price": close,
    })


def versions_of(s3, env, relative: str) -> list[str]:
    bucket, prefix = parse_url(env["LAKE_URL"])
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}objects/{relative}/")
    return [o["Key"] for o in listed.get("Contents", [])]


def test_the_url_picks_the_storage(tmp_path):
    assert isinstance(storage_for(tmp_path, {}), LocalDisk)
    assert parse_url("s3://bucket/a/b/") == ("bucket", "a/b/") and parse_url("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        storage_for(tmp_path, {"LAKE_URL": "gs://elsewhere"})


def test_a_partition_written_on_one_host_is_read_on_another_and_rewrites_replace_it(tmp_path, lake_env, s3):
    a, b = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    assert isinstance(a.storage, ObjectStorage) and a.storage.description.startswith("s3://")
    assert b.read("feed_records", HOUR).is_empty()

    path = a.write("feed_records", feed_rows(1.0), HOUR)
    assert b.read("feed_records", HOUR)["close"].to_list() == [1.0] * 3
    # Re-materializing (the same rows, then new ones) replaces the partition: never duplicates.
    a.write("feed_records", feed_rows(1.0), HOUR)
    a.write("feed_records", feed_rows(2.0, minutes=2), HOUR)
    assert b.read("feed_records", HOUR)["close"].to_list() == [2.0, 2.0]
    assert [p.relative_to(b.root) for p in b.files("feed_records")] == [path.relative_to(a.root)]
    # SQL on the other host reads the same (its DuckDB views read its synced copy).
    assert b.query("SELECT count(*) AS n, max(close) AS c FROM feed_records").row(0) == (2, 2.0)
    # Every commit was a new immutable object; younger than the grace time, none was deleted yet.
    assert len(versions_of(s3, lake_env, path.relative_to(a.root).as_posix())) == 3


def test_a_write_cut_short_before_its_pointer_leaves_the_old_partition_everywhere(tmp_path, lake_env, monkeypatch):
    a, b = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    a.write("feed_records", feed_rows(1.0), HOUR)
    assert b.read("feed_records", HOUR)["close"].to_list() == [1.0] * 3

    def crash(**kwargs):  # the new version is uploaded; the process dies before the pointer
        raise ConnectionError("connection lost")

    monkeypatch.setattr(a.storage.client, "put_object", crash)
    with pytest.raises(ConnectionError):
        a.write("feed_records", feed_rows(9.0), HOUR)
    assert b.read("feed_records", HOUR)["close"].to_list() == [1.0] * 3
    assert a.read("feed_records", HOUR)["close"].to_list() == [1.0] * 3  # the writer's own copy too


def test_old_versions_are_collected_after_the_grace_time_and_a_reader_follows_the_pointer(tmp_path, lake_env, s3, monkeypatch):
    a, b = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    monkeypatch.setattr(object_storage, "GRACE_SECONDS", 0.0)
    for close in (1.0, 2.0, 3.0):
        path = a.write("feed_records", feed_rows(close), HOUR)
    relative = path.relative_to(a.root).as_posix()
    [kept] = versions_of(s3, lake_env, relative)
    assert (a.root / path.parent / f".{path.name}.version").read_text() == kept
    assert b.read("feed_records", HOUR)["close"].to_list() == [3.0] * 3


def test_removals_and_events_reach_the_other_host(tmp_path, lake_env):
    a, b = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    keys = ["2026-11-20-10:00", "2026-11-20-11:00"]
    frame = pl.concat([feed_rows(1.0), feed_rows(1.0).with_columns(pl.col("ts_event") + dt.timedelta(hours=1))])
    a.write_windows("feed_records", frame, "ts_event", keys)
    assert len(b.files("feed_records")) == 2
    assert a.remove_windows("feed_records", [keys[0], "2026-11-20-12:00"]) == [keys[0]]
    assert [f.parent.name for f in b.files("feed_records")] == ["hour=11"]
    assert b.read("feed_records", keys[0]).is_empty()

    a.append_event("checkpoint_events", pl.DataFrame({
        "checkpoint_id": ["CKP-2026-11-15"], "event_at": [dt.datetime(2026, 11, 20, tzinfo=UTC)],
        "status": ["SUBMITTED"], "tx_hash": ["tx"], "caller": ["operator"],
    }))
    assert str(b.checkpoint_status("CKP-2026-11-15")) == "SUBMITTED"


def test_pruning_a_scoring_version_removes_it_from_the_store(tmp_path, lake_env):
    seeded = seed_lake(tmp_path / "a")
    v2 = seeded.lake.with_version("v2")
    v2.write("scores", seeded.scores.filter(pl.col("round_ts") < seeded.start + dt.timedelta(hours=1)), seeded.window_keys[0])
    other = Lake(tmp_path / "b", window_names=seeded.lake.window_names)
    assert other.versions("scores") == ["v1", "v2"]
    assert seeded.lake.prune_version("v2")
    assert Lake(tmp_path / "c", window_names=seeded.lake.window_names).versions("scores") == ["v1"]


def test_the_api_reader_on_another_host_follows_writes(tmp_path, lake_env):
    seeded = seed_lake(tmp_path / "a")
    reader = Lake(tmp_path / "b", window_names=seeded.lake.window_names).reader()
    try:
        count = lambda: reader.cursor().execute("SELECT sum(prediction_count) FROM leaderboard").fetchone()[0]  # noqa: E731
        before = count()
        seeded.lake.write("leaderboard", leaderboard_frame(version=7))
        assert not reader.is_current()
        assert count() != before
    finally:
        reader.close()


def test_partition_locks_hold_across_hosts_through_postgresql(tmp_path, lake_env, pg_url, monkeypatch):
    import psycopg2

    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    a, b = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    number = advisory_key(lake_env["LAKE_URL"], "feed_records", HOUR)
    probe = psycopg2.connect(pg_url.replace("postgresql+psycopg2://", "postgresql://"))
    probe.autocommit = True

    def free() -> bool:
        with probe.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (number,))
            got = cursor.fetchone()[0]
            if got:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (number,))
            return got

    entered = threading.Event()
    try:
        with a.partition_lock("feed_records", HOUR):
            assert not free()  # held in PostgreSQL, where every host sees it
            with b.partition_lock("feed_records", "2026-11-20-11:00"):
                pass  # another partition: not blocked
            waiter = threading.Thread(target=lambda: b.partition_lock("feed_records", HOUR).__enter__() and None or entered.set())
            waiter.start()
            assert not entered.wait(0.5)  # the other host waits while the lock is held
        waiter.join(30)
        assert entered.is_set()
    finally:
        probe.close()


def test_backup_and_restore_say_the_bucket_is_the_lake(tmp_path, lake_env, capsys):
    from coordinator_dagster.cli.main import main

    seeded = seed_lake(tmp_path / "a")
    archive = tmp_path / "node.tar.gz"
    assert main(["backup", str(archive), "--home", str(seeded.lake.home)]) == 0
    out = capsys.readouterr().out
    assert f"LAKE_URL is set: the lake lives in {lake_env['LAKE_URL']}" in out and "this host's copy" in out
    assert "aws s3 sync" in out and "testing" not in out  # the credentials are never echoed
    assert main(["restore", str(archive), "--home", str(tmp_path / "restored")]) == 0
    assert "the bucket's pointers win" in capsys.readouterr().out
    # The restored copy carries each file's version, so it reconciles with the bucket, not beside it.
    seeded.lake.write("leaderboard", leaderboard_frame(version=7))
    restored = Lake(tmp_path / "restored", window_names=seeded.lake.window_names)
    assert restored.read("leaderboard").equals(seeded.lake.read("leaderboard"))
    assert restored.query("SELECT count(*) FROM raw_predictions").item() == seeded.raw_predictions.height


def test_two_api_replicas_on_two_hosts_answer_the_same_after_a_write_to_the_bucket(tmp_path, lake_env):
    """tests/test_api_replicas.py's scenario with the replicas on homes of their own (two hosts)
    sharing only the bucket; LAKE_SYNC_SECONDS=0 makes each request list the bucket."""
    import httpx

    from api.solana import b58encode
    from tests.test_api_replicas import PENDING, answers, replica

    seeded = seed_lake(tmp_path / "writer")
    with replica(tmp_path / "host-a", tmp_path / "a.log") as a, replica(tmp_path / "host-b", tmp_path / "b.log") as b, httpx.Client(timeout=30) as client:
        before = answers(client, a)
        assert before == answers(client, b) and before[0]  # both read the bucket's leaderboard
        seeded.lake.write("leaderboard", leaderboard_frame(version=7))
        newest = seeded.window_keys[-1]
        seeded.lake.write("predictions", seeded.lake.read("predictions", newest).with_columns(pl.lit(0.123).alias("value")), newest)
        after = answers(client, a)
        assert after == answers(client, b) != before
        assert [row["prediction_count"] for row in after[0]] == [107, 207, 307]
        assert after[1]["items"][0]["value"] == 0.123

        signature = b58encode(bytes(range(1, 65)))
        confirmed = client.post(f"{a}/reports/checkpoints/{PENDING}/confirm", json={"tx_hash": signature})
        assert confirmed.status_code == 200, confirmed.text
        seen = client.get(f"{b}/reports/checkpoints/{PENDING}").json()
        assert (seen["status"], seen["tx_hash"]) == ("SUBMITTED", signature)
        again = client.post(f"{b}/reports/checkpoints/{PENDING}/confirm", json={"tx_hash": signature})
        assert again.status_code == 200 and len(again.json()["history"]) == 1

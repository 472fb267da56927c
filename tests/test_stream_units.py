"""The listener's plain parts: closing steps, the bounded buffer, the shared merge rule, record
validation, backoff, and the settings that switch the minute poll off when listening."""

import datetime as dt
import logging
import random

import dagster as dg
import polars as pl
import pytest

from coordinator_dagster.settings import load_settings
from coordinator_dagster.feeds.streaming.buffer import RecordBuffer
from coordinator_dagster.feeds.streaming.listener import Listener, ListenerConfig
from coordinator_dagster.feeds.records import dedupe_records, merge_records
from coordinator_dagster.feeds.streaming.records import MalformedRecord, Record, StepCloser, candle_record, records_frame
from coordinator_dagster.cli.listener_setup import dagster_instance
from coordinator_dagster.feeds.streaming.writer import hour_key
from sensors.schedules import build_ingest_schedule

M = 60_000


def rec(subject: str, i: int, close: float = 100.0) -> Record:
    return Record(subject, i * M, close=close, open=close, high=close, low=close, volume=1.0)


def test_a_candle_closes_when_a_later_one_arrives_never_before():
    closer = StepCloser(M)
    assert closer.update(rec("BTC", 1, 10)) == ([], [])
    assert closer.update(rec("BTC", 1, 11)) == ([], [])  # same step: the latest update wins
    assert closer.update(rec("ETH", 1, 5)) == ([], [])  # subjects close independently
    closed, refetch = closer.update(rec("BTC", 2, 12))
    assert closed == [rec("BTC", 1, 11)] and refetch == []
    assert closer.update(rec("BTC", 1, 99)) == ([], [])  # a stale update of a closed step
    assert closer.duplicates == 1


def test_late_new_steps_are_released_and_skipped_steps_are_refetched():
    closer = StepCloser(M)
    closer.update(rec("BTC", 1))
    closed, refetch = closer.update(rec("BTC", 4))  # 2 and 3 skipped
    assert closed == [rec("BTC", 1)] and refetch == [("BTC", 2 * M, 4 * M)]
    assert closer.update(rec("BTC", 2)) == ([rec("BTC", 2)], [])  # late but new: written
    assert closer.update(rec("BTC", 2)) == ([], [])  # and only once


def test_a_garbled_step_is_refetched_instead_of_written():
    closer = StepCloser(M)
    closer.update(rec("BTC", 1))
    closer.taint("BTC", 1 * M)
    closer.update(rec("BTC", 1, 7))  # a valid update after it does not clear the doubt
    assert closer.update(rec("BTC", 2)) == ([], [("BTC", M, 2 * M)])


def test_ticks_keep_the_earliest_published_update_of_a_step():
    closer = StepCloser(M, prefer_earliest=True)
    closer.update(rec("BTC", 1, 30), rank=30)
    closer.update(rec("BTC", 1, 10), rank=10)
    closer.update(rec("BTC", 1, 20), rank=20)
    assert closer.update(rec("BTC", 2), rank=120)[0] == [rec("BTC", 1, 10)]


def test_skip_through_and_reset():
    closer = StepCloser(M)
    closer.skip_through("BTC", 3 * M)
    assert closer.update(rec("BTC", 3)) == ([], [])
    closer.update(rec("BTC", 4))
    closer.reset()  # a disconnect: the forming step is forgotten, not closed
    assert closer.update(rec("BTC", 6)) == ([], [])


def test_the_buffer_coalesces_bounds_and_reports_what_it_dropped():
    buffer = RecordBuffer(capacity=3)
    assert buffer.put([rec("BTC", i) for i in range(3)], 1.0) == 0
    assert buffer.put([rec("BTC", 1, 50)], 2.0) == 0  # same key: replaced, no growth
    assert buffer.put([rec("BTC", 7), rec("BTC", 5), rec("ETH", 9)], 3.0) == 3
    assert len(buffer) == 3 and buffer.stats.high_water == 3
    assert buffer.stats.coalesced == 1 and buffer.stats.dropped == 3
    assert buffer.take_dropped() == {"BTC": (5 * M, 7 * M), "ETH": (9 * M, 9 * M)}
    assert buffer.take_dropped() == {}
    items = buffer.take(0.01)
    assert [p.record.ts_ms for p in items] == [0, M, 2 * M] and items[1].record.close == 50
    assert buffer.take(0.01) == []
    with pytest.raises(ValueError):
        RecordBuffer(0)


def test_merge_adds_new_keys_replaces_repeated_ones_and_sorts_like_the_batch_path():
    frame = lambda rs: records_frame(rs, source="binance", kind="candle", granularity="1m")  # noqa: E731
    existing = frame([rec("BTC", 1, 1), rec("BTC", 2, 2)])
    merged = merge_records(existing, frame([rec("BTC", 2, 20), rec("ETH", 0, 3)]))
    assert merged.select("subject", "close").rows() == [("ETH", 3.0), ("BTC", 1.0), ("BTC", 20.0)]
    batch_rule = pl.concat([existing, frame([rec("BTC", 2, 20), rec("ETH", 0, 3)])]).unique(
        ["source", "subject", "kind", "granularity", "ts_event"], keep="last"
    ).sort("ts_event", "subject")
    assert merged.equals(batch_rule)
    assert dedupe_records(merged).equals(merged)


@pytest.mark.parametrize(
    "row, problem",
    [
        ([60_001, 1, 1, 1, 1, 1], "grid"),
        ([M, None, 1, 1, 1, 1], "not a number"),
        ([M, 1, 1, 1, float("nan"), 1], "nan"),
        ([M, 0, 1, 0, 1, 1], "0"),
        ([M, 1, 1, 1, 1, -1], "-1"),
        ([M, 5, 4, 1, 2, 1], "outside"),
        ("x", r"not \[t, o, h, l, c, v\]"),
    ],
)
def test_candle_validation(row, problem):
    with pytest.raises(MalformedRecord, match=problem):
        candle_record("BTC", row, M)


def test_hour_keys_and_backoff_with_jitter():
    assert hour_key(int(dt.datetime(2026, 11, 2, 10, 59, tzinfo=dt.timezone.utc).timestamp() * 1000)) == "2026-11-02-10:00"
    listener = Listener.__new__(Listener)
    listener.config = ListenerConfig(backoff_initial=1.0, backoff_max=8.0)
    listener.rng = random.Random(1)
    delays = [listener._delay(n) for n in range(1, 7)]
    for n, delay in enumerate(delays, 1):
        cap = min(8.0, 2 ** (n - 1))
        assert cap / 2 <= delay <= cap
    assert len(set(delays)) == len(delays)  # jittered


def test_feed_live_starts_the_minute_poll_stopped():
    assert build_ingest_schedule("1m").default_status == dg.DefaultScheduleStatus.RUNNING
    assert build_ingest_schedule("1m", live=True).default_status == dg.DefaultScheduleStatus.STOPPED
    assert load_settings({"FEED_LIVE": "1"}).feed_live and not load_settings({}).feed_live
    with pytest.raises(ValueError):
        load_settings({"FEED_LIVE": "perhaps"})


def test_build_defs_follows_feed_live():
    from coordinator_dagster.definitions import build_defs

    defs = build_defs(settings=load_settings({"FEED_LIVE": "1"}))
    schedule = next(s for s in defs.schedules if s.name == "ingest_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_without_dagster_home_writes_go_on_unreported(monkeypatch, caplog):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with caplog.at_level(logging.WARNING, logger="coordinator.feeds.listen"):
        assert dagster_instance(load_settings()) is None
    assert "DAGSTER_HOME is not set" in caplog.text

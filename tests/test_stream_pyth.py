"""The live listener on Pyth Hermes' server-sent event stream (the loopback Hermes double in
tests/hermes_server.py, through httpx), with gaps filled through the REST path (PythSource):
normal flow, duplicate and out-of-order updates, a stream dropped mid-step, a flood, malformed
events. One tick per minute: the first price published in it, as the batch path stores."""

import datetime as dt
import logging
import threading
import time

import polars as pl
import pytest

from coordinator_dagster.feeds.streaming.listener import running
from coordinator_dagster.feeds.streaming.sources import HermesStream
from coordinator_dagster.feeds.pyth import PYTH_FEED_IDS, PythSource
from tests.hermes_server import EXPO, HermesServer
from tests.stream_support import UTC, fast_config, make_listener, materializations, stored, wait_until

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

T0 = int(dt.datetime(2026, 11, 2, 10, 0, tzinfo=UTC).timestamp())  # unix seconds, a minute boundary
SUBJECTS = {"BTC": PYTH_FEED_IDS["BTC"], "ETH": PYTH_FEED_IDS["ETH"]}


@pytest.fixture
def hermes():
    with HermesServer(now=T0 + 3600) as server:
        yield server


@pytest.fixture
def listen(hermes, tmp_path):
    def start(**kwargs):
        feed = PythSource(base_url=hermes.base_url, benchmarks_url=hermes.base_url, kind="tick", backoff_seconds=0.01, timeout_seconds=2.0)
        return make_listener(tmp_path / "home", HermesStream(feed, idle_timeout=20.0), feed, **kwargs)

    return start


def expected(first_slot: int, last_slot: int) -> pl.DataFrame:
    """One tick per subject per minute: the update published at the minute's first second."""
    rows = [
        {"subject": s, "ts": slot * 1000, "price": HermesServer.price(feed_id, slot) * 10**EXPO}
        for s, feed_id in SUBJECTS.items()
        for slot in range(first_slot, last_slot + 60, 60)
    ]
    return pl.DataFrame(rows).sort("subject", "ts")


def lake_ticks(lake) -> pl.DataFrame:
    return stored(lake).select("subject", pl.col("ts_event").dt.epoch("ms").alias("ts"), "price").sort("subject", "ts")


def same(got: pl.DataFrame, want: pl.DataFrame) -> bool:
    if got.select("subject", "ts").rows() != want.select("subject", "ts").rows():
        return False
    return all(abs(a - b) < 1e-9 for a, b in zip(got["price"], want["price"]))


def events(hermes: HermesServer, first: int, last: int, every: int = 5) -> list[dict]:
    return [hermes.event(t) for t in range(first, last + 1, every)]


def test_ticks_reach_the_lake_first_price_per_minute_with_dagster_events(listen, hermes, caplog):
    caplog.set_level(logging.INFO, logger="coordinator.feeds.listen")
    listener, lake, instance = listen()
    with running(listener):
        hermes.wait_streams(1)
        # Joined at 09:59:55: that minute's first updates were missed, so REST serves it.
        hermes.publish(*events(hermes, T0 - 5, T0 + 185))
        wait_until(lambda: lake_ticks(lake).height == 8, what="4 minutes × 2 subjects")
        time.sleep(0.3)  # minute 3 is still open: not written
    assert same(lake_ticks(lake), expected(T0 - 60, T0 + 120))
    frame = stored(lake)
    assert set(frame["source"]) == {"pyth"} and set(frame["kind"]) == {"tick"}
    assert frame["open"].is_null().all() and (frame["close"] == frame["price"]).all()
    assert any(path == "/v2/updates/price/stream" for path, _ in hermes.requests)
    assert any(path == f"/v1/updates/price/{T0 - 60}/59" for path, _ in hermes.requests)  # the partial minute, from history
    partitions = {e.partition for e in materializations(instance)}
    assert partitions == {"2026-11-02-09:00", "2026-11-02-10:00"}
    assert "connected: Pyth Hermes SSE" in caplog.text


def test_duplicate_and_out_of_order_updates_keep_the_first_price_of_each_minute(listen, hermes):
    listener, lake, _ = listen()
    with running(listener):
        hermes.wait_streams(1)
        hermes.publish(hermes.event(T0 - 1))  # the partial minute 09:59
        hermes.publish(
            hermes.event(T0 + 30), hermes.event(T0), hermes.event(T0), hermes.event(T0 + 10),  # out of order, repeated
            hermes.event(T0 + 120), hermes.event(T0 + 60),  # minute 2 before minute 1: 1 is late but new
            hermes.event(T0 + 5),  # a late update of closed minute 0: dropped
            hermes.event(T0 + 180),
        )
        wait_until(lambda: lake_ticks(lake).height == 8, what="minutes 09:59-10:02")
        wait_until(lambda: listener.stats.duplicates >= 1, what="the repeated 10:00 update counted as a duplicate")
    assert same(lake_ticks(lake), expected(T0 - 60, T0 + 120))


def test_a_stream_dropped_mid_minute_is_refilled_through_rest(listen, hermes, caplog):
    caplog.set_level(logging.INFO, logger="coordinator.feeds.listen")
    listener, lake, _ = listen()
    with running(listener):
        hermes.wait_streams(1)
        hermes.publish(*events(hermes, T0 - 5, T0 + 70))  # minute 1 open when the stream drops
        wait_until(lambda: lake_ticks(lake).height == 4, what="minutes 09:59-10:00")
        hermes.drop_streams()
        hermes.wait_streams(2)
        hermes.publish(*events(hermes, T0 + 250, T0 + 365))  # resumes inside minute 4
        wait_until(lambda: lake_ticks(lake).height == 14, what="minutes up to 10:05")
    assert same(lake_ticks(lake), expected(T0 - 60, T0 + 300))
    assert "disconnected: RemoteProtocolError" in caplog.text
    assert "gap filled: 2026-11-02 10:01:00 → 2026-11-02 10:05:00" in caplog.text


def test_a_flood_keeps_memory_bounded_and_loses_nothing(listen, hermes, caplog):
    caplog.set_level(logging.INFO, logger="coordinator.feeds.listen")
    minutes = 100
    # The disk writes nothing until the flood has been read: the buffer of 10 must overflow.
    gate = threading.Event()
    listener, lake, _ = listen(config=fast_config(capacity=10), slow=0.05, gate=gate)
    with running(listener):
        hermes.wait_streams(1)
        flood = events(hermes, T0 - 1, T0 + minutes * 60, every=1)  # 6,002 events, one a second
        hermes.publish(*flood)
        # The receiving side reads the whole flood while the writer cannot write at all.
        wait_until(lambda: listener.stats.messages >= len(flood), timeout=120, what="the flood to be read")
        assert listener.stats.written == 0
        gate.set()
        wait_until(lambda: lake_ticks(lake).height == 2 * (minutes + 1), timeout=120, what="every minute in the lake")
    assert same(lake_ticks(lake), expected(T0 - 60, T0 + (minutes - 1) * 60))
    assert listener.buffer.stats.high_water <= 10
    assert listener.stats.dropped > 0
    assert "degraded: writer behind" in caplog.text


def test_malformed_events_are_logged_skipped_and_never_written(listen, hermes, caplog):
    caplog.set_level(logging.INFO, logger="coordinator.feeds.listen")
    listener, lake, _ = listen()
    ids = list(SUBJECTS.values())
    bad_price = hermes.event(T0 + 60, ids)
    bad_price["parsed"][0]["price"]["price"] = "abc"  # BTC's first update of minute 1
    no_time = hermes.event(T0 + 61, ids)
    del no_time["parsed"][1]["price"]["publish_time"]
    with running(listener):
        hermes.wait_streams(1)
        hermes.publish(hermes.event(T0 - 1), hermes.event(T0), "{not json", '{"binary": {}}', bad_price, no_time, hermes.event(T0 + 62), hermes.event(T0 + 120))
        wait_until(lambda: lake_ticks(lake).height == 6, what="minutes 09:59-10:01")
        time.sleep(0.3)
    # BTC's minute 1 started with an unreadable update: REST's first price of the minute is stored.
    assert same(lake_ticks(lake), expected(T0 - 60, T0 + 60))
    assert listener.stats.malformed == 4
    assert caplog.text.count("malformed message skipped") == 4
    assert "not JSON" in caplog.text and "no 'parsed' list" in caplog.text and "bad price entry" in caplog.text

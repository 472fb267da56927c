"""The unmodified ccxt binance class against a loopback exchange: backfills through Dagster,
retries on 429 / 500 / timeouts, truncated pages, failures that write nothing, and scoring that
waits on a failed blocking feed check."""

import datetime as dt
import hashlib
import json
import logging

import dagster as dg
import polars as pl
import pytest

from assets import default_assets
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.settings import load_settings
from coordinator_dagster.definitions import feed_resource
from coordinator_dagster.feeds.ccxt import CcxtSource
from coordinator_dagster.feeds.pyth import PythSource
from coordinator_dagster.feeds.sources import FeedUnavailableError, SyntheticSource, UnsupportedFeedError
from resources import CcxtFeed, PythFeed, SyntheticFeed
from sensors import score_sensor
from tests.conftest import pipeline_resources
from tests.exchange_server import ExchangeServer

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

UTC = dt.timezone.utc
WEEK_START = dt.datetime(2026, 11, 1, tzinfo=UTC)
WEEK_END = WEEK_START + dt.timedelta(days=7)


def ms(ts: dt.datetime) -> int:
    return int(ts.timestamp() * 1000)


@pytest.fixture(scope="module")
def server():
    with ExchangeServer(timeout_delay=1.0) as s:
        yield s


@pytest.fixture(autouse=True)
def clean_server(server):
    server.faults.clear()
    server.missing.clear()
    server.frozen_from.clear()
    server.requests.clear()


def feed(server, **kw) -> CcxtFeed:
    """The resource the assets read."""
    return CcxtFeed(base_url=server.base_url, backoff_seconds=0.01, timeout_seconds=0.3, **kw)


def client(server, **kw) -> CcxtSource:
    """The core client the resource wraps."""
    return CcxtSource(base_url=server.base_url, backoff_seconds=0.01, timeout_seconds=0.3, **kw)


def backfill(resources, first: str, last: str, raise_on_error=True):
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize(default_assets, selection=["feed_records"], resources=resources, tags=tags, raise_on_error=raise_on_error)


def file_hashes(lake: Lake) -> dict[str, str]:
    return {str(p.relative_to(lake.root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in lake.files("feed_records")}


def check_results(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_week_backfill_matches_the_exchange_and_reruns_identically(server, tmp_path):
    resources = pipeline_resources(tmp_path, WEEK_END + dt.timedelta(days=1), feed=feed(server))
    result = backfill(resources, "2026-11-01-00:00", "2026-11-07-23:00")
    assert all(check_results(result).values())
    lake = Lake(tmp_path)
    stored = lake.read_window("feed_records", WEEK_START, WEEK_END)
    for subject in ("BTC", "ETH"):
        expected = server.candles(f"{subject}/USDT", ms(WEEK_START), ms(WEEK_END))
        rows = stored.filter(pl.col("subject") == subject).sort("ts_event")
        assert rows.height == len(expected) == 7 * 24 * 60
        assert [ms(t) for t in rows["ts_event"]] == [r[0] for r in expected]
        assert rows["close"].to_list() == [float(r[4]) for r in expected]
        assert rows["open"].to_list() == [float(r[1]) for r in expected]
    assert set(stored["source"]) == {"binance"}
    assert len(lake.files("feed_records")) == 168
    before = file_hashes(lake)
    backfill(resources, "2026-11-01-00:00", "2026-11-07-23:00")
    assert file_hashes(lake) == before


def test_429_500_timeout_and_truncated_page_are_retried_to_a_complete_window(server, caplog):
    caplog.set_level(logging.WARNING, logger="coordinator.feeds")
    server.faults.extend([429, 500, "timeout", "truncate"])
    start = WEEK_START
    frame = client(server).fetch(start, start + dt.timedelta(hours=3))
    assert frame.height == 2 * 180
    btc = frame.filter(pl.col("subject") == "BTC")
    assert [ms(t) for t in btc["ts_event"]] == [r[0] for r in server.candles("BTC/USDT", ms(start), ms(start) + 3 * 3_600_000)]
    # 3 failed attempts + the truncated page + the page after it (BTC), then one page for ETH.
    assert server.requests.count("/api/v3/klines") == 6
    retries = [r.getMessage() for r in caplog.records if r.name == "coordinator.feeds"]
    assert len(retries) == 3 and "retry 1/4" in retries[0] and "429" in retries[0]


@pytest.mark.parametrize(("resource", "client"), [(CcxtFeed, CcxtSource), (PythFeed, PythSource), (SyntheticFeed, SyntheticSource)])
def test_each_resource_has_its_clients_fields_and_builds_it(resource, client):
    assert {n: f.default for n, f in resource.model_fields.items()} == {n: f.default for n, f in client.model_fields.items()}
    wrapped = resource(subjects=["BTC"], granularity="5m").source()
    assert type(wrapped) is client and wrapped.subjects == ["BTC"] and wrapped.step_seconds == 300


def test_persistent_failure_is_a_clear_error_and_writes_nothing_of_that_day(server, tmp_path):
    # Day one (4 pages) succeeds; every attempt at day two fails with HTTP 500.
    server.faults.extend([None] * 4 + [500] * 200)
    resources = pipeline_resources(tmp_path, WEEK_END, feed=feed(server, max_retries=1))
    result = backfill(resources, "2026-11-01-00:00", "2026-11-02-23:00", raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][-1]
    assert "failed after 2 attempts" in str(failure.event_specific_data.error.cause or failure.event_specific_data.error)
    lake = Lake(tmp_path)
    assert lake.read_window("feed_records", WEEK_START, WEEK_START + dt.timedelta(days=1)).height == 2 * 1440
    assert not any("2026-11-02" in str(p) for p in lake.files("feed_records"))


def test_retries_exhausted_raise_feed_unavailable(server):
    server.faults.extend([429] * 10)
    with pytest.raises(FeedUnavailableError, match="RateLimitExceeded|DDoSProtection"):
        client(server, max_retries=2).fetch(WEEK_START, WEEK_START + dt.timedelta(hours=1))


def test_missing_minutes_are_recorded_by_the_blocking_gap_check(server, tmp_path):
    hour = dt.datetime(2026, 11, 3, 5, tzinfo=UTC)
    server.missing.update({("BTCUSDT", ms(hour) + 10 * 60_000), ("BTCUSDT", ms(hour) + 11 * 60_000)})
    resources = pipeline_resources(tmp_path, hour + dt.timedelta(days=1), feed=feed(server))
    result = backfill(resources, "2026-11-03-05:00", "2026-11-03-05:00", raise_on_error=False)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["feed_no_gaps"].passed
    assert checks["feed_no_gaps"].metadata["missing_records"].value == 2
    assert "BTC 2026-11-03T05:10:00Z..2026-11-03T05:12:00Z" in checks["feed_no_gaps"].metadata["examples"].value
    assert Lake(tmp_path).read("feed_records", "2026-11-03-05:00").height == 118  # written as delivered, flagged


def test_unsupported_granularity_and_symbol_are_refused(server):
    with pytest.raises(UnsupportedFeedError, match="no 7m candles"):
        client(server, granularity="7m").fetch(WEEK_START, WEEK_END)
    with pytest.raises(UnsupportedFeedError, match="no market for SOL"):
        client(server, subjects=["SOL"]).fetch(WEEK_START, WEEK_END)
    with pytest.raises(ValueError, match="no 7m candles"):
        feed_resource(load_settings({"FEED_SOURCE": "ccxt", "FEED_GRANULARITY": "7m"}))
    with pytest.raises(ValueError, match="FEED_SYMBOLS"):
        load_settings({"FEED_SYMBOLS": "BTC"})
    settings = load_settings({"FEED_SOURCE": "ccxt", "FEED_SYMBOLS": "BTC=BTC/USDC", "FEED_BASE_URL": server.base_url})
    built = feed_resource(settings)
    assert isinstance(built, CcxtFeed) and built.symbol("BTC") == "BTC/USDC" and built.symbol("ETH") == "ETH/USDT"


def test_score_sensor_waits_on_a_frozen_feed_and_says_why(server, tmp_path):
    hour = dt.datetime(2026, 11, 4, 10, tzinfo=UTC)
    server.frozen_from["BTCUSDT"] = ms(hour) - 40 * 60_000  # frozen since 09:20
    now = hour + dt.timedelta(minutes=20, seconds=5)
    resources = pipeline_resources(tmp_path, now, feed=feed(server))
    result = backfill(resources, "2026-11-04-09:00", "2026-11-04-10:00", raise_on_error=False)
    assert check_results(result)["feed_price_not_frozen"] is False
    cursor = json.dumps({"closed-hour": "2026-11-04T09:00:00Z"})  # earlier hours already closed
    with dg.instance_for_test() as instance:
        skipped = score_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor))
    assert isinstance(skipped, dg.SkipReason)
    assert "btc-60s: round 2026-11-04T10:19:00Z waits: feed check failed: feed_price_not_frozen" in skipped.skip_message
    # Once the feed is repaired and re-materialized, the round is scored.
    server.frozen_from.clear()
    backfill(resources, "2026-11-04-09:00", "2026-11-04-10:00")
    with dg.instance_for_test() as instance:
        ready = score_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor))
    assert "score:2026-11-04T10:19:00Z" in [r.run_key for r in ready.run_requests]


def test_ticks_are_the_last_trade_of_each_step(server):
    start = WEEK_START + dt.timedelta(minutes=30)
    frame = client(server, kind="tick", page_limit=100).fetch(start, start + dt.timedelta(hours=2))
    btc = frame.filter(pl.col("subject") == "BTC").sort("ts_event")
    assert btc.height == 120 and set(frame["kind"]) == {"tick"}
    assert btc["price"].to_list() == [server.close_price("BTCUSDT", ms(t)) for t in btc["ts_event"]]
    assert btc["volume"].to_list() == [pytest.approx(0.4)] * 120  # four trades of 0.1 a minute
    assert server.requests.count("/api/v3/aggTrades") > 2 * 3  # hour slices, paged

"""The Pyth client (and its resource, PythFeed) against a loopback Pyth-shaped server: history in
batches from Benchmarks (ticks from its interval endpoint, candles from its TradingView shim), the
latest price for live steps from Hermes, the API key as a Bearer token, retries and refusals."""

import datetime as dt
import threading

import dagster as dg
import polars as pl
import pytest

from assets import default_assets
from coordinator_dagster.definitions import feed_resource
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.settings import load_settings
from coordinator_dagster.feeds.pyth import PYTH_FEED_IDS, PythSource
from coordinator_dagster.feeds.sources import FeedUnavailableError, UnsupportedFeedError
from resources import PythFeed
from tests.conftest import pipeline_resources
from tests.hermes_server import HermesServer

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

UTC = dt.timezone.utc
HOUR = dt.datetime(2026, 11, 20, 10, tzinfo=UTC)
NOW = HOUR + dt.timedelta(minutes=30, seconds=20)


@pytest.fixture
def hermes():
    with HermesServer(now=int(NOW.timestamp())) as server:
        yield server


def pyth(hermes, **kw) -> PythSource:
    return PythSource(base_url=hermes.base_url, benchmarks_url=hermes.base_url, backoff_seconds=0.01, timeout_seconds=2, **kw)


def test_history_is_one_tick_per_step_with_price_times_ten_to_expo(hermes):
    frame = pyth(hermes).fetch(HOUR, HOUR + dt.timedelta(minutes=10), now=HOUR + dt.timedelta(days=1))
    assert frame.height == 20 and set(frame["source"]) == {"pyth"} and set(frame["kind"]) == {"tick"}
    btc = frame.filter(pl.col("subject") == "BTC").sort("ts_event")
    first = int(HOUR.timestamp())
    assert btc["price"][0] == HermesServer.price(PYTH_FEED_IDS["BTC"], first) / 1e8
    assert btc["close"].to_list() == btc["price"].to_list()
    # One Benchmarks request per one-minute step, both subjects in each.
    assert sorted(p for p, _ in hermes.requests) == [f"/v1/updates/price/{first + 60 * i}/59" for i in range(10)]


def test_one_second_ticks_come_sixty_steps_a_request(hermes):
    frame = pyth(hermes, granularity="1s").fetch(HOUR, HOUR + dt.timedelta(minutes=10), now=HOUR + dt.timedelta(days=1))
    first = int(HOUR.timestamp())
    btc = frame.filter(pl.col("subject") == "BTC").sort("ts_event")
    assert [int(t.timestamp()) for t in btc["ts_event"]] == list(range(first, first + 600))
    assert btc["price"].to_list() == [HermesServer.price(PYTH_FEED_IDS["BTC"], t) / 1e8 for t in range(first, first + 600)]
    # 600 steps in 10 requests (the Hermes path asked once per step: 600).
    assert sorted(p for p, _ in hermes.requests) == [f"/v1/updates/price/{first + 60 * i}/59" for i in range(10)]


def test_candles_come_from_the_tradingview_shim_in_ranges(hermes):
    day = dt.timedelta(days=1)
    hermes.now = int((HOUR + 2 * day).timestamp())
    frame = pyth(hermes, kind="candle", bars_per_request=1000).fetch(HOUR, HOUR + day, now=HOUR + 2 * day)
    assert frame.height == 2 * 1440 and set(frame["kind"]) == {"candle"}
    eth = frame.filter(pl.col("subject") == "ETH").sort("ts_event")
    t = int(HOUR.timestamp()) + 60 * 7
    seconds = [HermesServer.price(PYTH_FEED_IDS["ETH"], s) / 1e8 for s in range(t, t + 60)]
    assert eth.row(7, named=True) | {"ts_event": None} == {
        "source": "pyth", "subject": "ETH", "kind": "candle", "granularity": "1m", "ts_event": None,
        "open": seconds[0], "high": max(seconds), "low": min(seconds), "close": seconds[-1], "volume": 0.0, "price": seconds[-1],
    }
    # 1,440 bars per subject, 1,000 a request: 2 requests each.
    paths = [p for p, _ in hermes.requests]
    assert paths == ["/v1/shims/tradingview/history"] * 4


def test_only_closed_candles_are_kept(hermes):
    hermes.now = int(NOW.timestamp())
    frame = pyth(hermes, kind="candle").fetch(HOUR, HOUR + dt.timedelta(hours=1), now=NOW)
    # At 10:30:20 the candles of 10:00 … 10:29 have closed; 10:30's has not.
    assert frame.filter(pl.col("subject") == "BTC")["ts_event"].max() == HOUR + dt.timedelta(minutes=29)


def test_live_steps_use_the_latest_price_and_the_api_key(hermes):
    hermes.now = int((HOUR + dt.timedelta(minutes=29, seconds=1)).timestamp())
    frame = pyth(hermes, api_key="secret").fetch(HOUR + dt.timedelta(minutes=25), HOUR + dt.timedelta(minutes=30), now=NOW)
    assert frame.height == 10
    paths = [p for p, _ in hermes.requests]
    assert paths[0] == "/v2/updates/price/latest"
    assert f"/v1/updates/price/{int((HOUR + dt.timedelta(minutes=29)).timestamp())}/59" not in paths  # covered by latest
    assert {auth for _, auth in hermes.requests} == {"Bearer secret"}


def test_retries_on_429_and_5xx_then_fails_clearly(hermes):
    hermes.faults.extend([429, 503])
    assert pyth(hermes).fetch(HOUR, HOUR + dt.timedelta(minutes=1), now=NOW).height == 2
    hermes.faults.extend([500] * 5)
    with pytest.raises(FeedUnavailableError, match="failed after 3 attempts"):
        pyth(hermes, max_retries=2).fetch(HOUR, HOUR + dt.timedelta(minutes=1), now=NOW)


def test_missing_updates_leave_a_gap_the_check_records(hermes, tmp_path):
    minute = int((HOUR + dt.timedelta(minutes=3)).timestamp())
    hermes.missing.update(range(minute, minute + 60))  # nothing published in 10:03
    feed = PythFeed(base_url=hermes.base_url, benchmarks_url=hermes.base_url, backoff_seconds=0.01, timeout_seconds=2)
    resources = pipeline_resources(tmp_path, NOW, feed=feed)
    result = dg.materialize(default_assets, selection=["feed_records"], resources=resources, partition_key="2026-11-20-10:00", raise_on_error=False)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["feed_no_gaps"].passed and checks["feed_no_gaps"].metadata["missing_records"].value == 2  # BTC and ETH
    assert checks["feed_fresh"].passed
    assert Lake(tmp_path).read("feed_records", "2026-11-20-10:00").height == 2 * 30 - 2


def test_sub_minute_candles_and_unknown_subjects_are_refused():
    PythSource(kind="candle", granularity="5m").check_config()
    with pytest.raises(UnsupportedFeedError, match="FEED_KIND=tick"):
        PythSource(kind="candle", granularity="1s").check_config()
    assert PythSource(subjects=["BTCUSDT"]).feed_id("BTCUSDT") == PYTH_FEED_IDS["BTC"]
    assert PythSource.symbol("ETHUSDT") == "Crypto.ETH/USD"
    with pytest.raises(UnsupportedFeedError, match="PYTH_FEED_IDS"):
        PythSource(subjects=["SOL"]).check_config()
    sol = "ef0d8b6fda2ceba41da15d4095d1da392a0d2f8ed0c6c7bc0f4cfac8c280b56d"
    settings = load_settings({"FEED_SOURCE": "pyth", "FEED_KIND": "tick", "FEED_SUBJECTS": "BTC,SOL", "PYTH_FEED_IDS": f"SOL=0x{sol}"})
    built = feed_resource(settings)
    assert isinstance(built, PythFeed) and built.feed_id("SOL") == sol and built.api_key == ""


def test_api_key_reaches_the_resource_as_an_env_var_at_launch(monkeypatch):
    monkeypatch.setenv("PYTH_API_KEY", "hunter2-secret")
    settings = load_settings({"FEED_SOURCE": "pyth", "FEED_KIND": "tick", "PYTH_API_KEY": "hunter2-secret"})
    assert "hunter2" not in settings.model_dump_json()
    built = feed_resource(settings)
    assert isinstance(built.api_key, dg.EnvVar) and built.api_key.env_var_name == "PYTH_API_KEY"
    # Dagster resolves it when it initializes the resource; the client gets the value.
    assert built.process_config_and_initialize().source().api_key == "hunter2-secret"


def test_history_requests_go_out_concurrently_and_land_in_step_order(hermes):
    # The double answers history only once 4 requests are in flight together: a client asking one
    # step at a time breaks the rendezvous (and the fetch fails) instead of passing.
    hermes.rendezvous = threading.Barrier(4, timeout=10)
    frame = pyth(hermes, concurrency=4, max_retries=0).fetch(HOUR, HOUR + dt.timedelta(minutes=8), now=HOUR + dt.timedelta(days=1))
    assert not hermes.rendezvous_broken
    btc = frame.filter(pl.col("subject") == "BTC")
    first = int(HOUR.timestamp())
    assert [int(t.timestamp()) for t in btc["ts_event"]] == [first + 60 * i for i in range(8)]
    assert btc["price"].to_list() == [HermesServer.price(PYTH_FEED_IDS["BTC"], first + 60 * i) / 1e8 for i in range(8)]
    assert len(hermes.requests) == 8

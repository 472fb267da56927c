"""Backfills that resume: each hour is recorded in Dagster as it is written, and a run of the same
range (a step retry, a re-execution, the backfill launched again) fetches only the hours that are
not complete. Real partitions, a real Dagster instance, the loopback Binance double."""

from __future__ import annotations

import datetime as dt
import hashlib

import dagster as dg
import pytest

from assets import default_assets
from assets.feeds import REFETCH_TAG
from coordinator_dagster.feeds.resume import complete_hours, spans_to_fetch
from coordinator_dagster.lake.store import Lake
from resources import CcxtFeed, PythFeed
from tests.conftest import pipeline_resources
from tests.exchange_server import ExchangeServer
from tests.hermes_server import HermesServer

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 7
END = START + dt.timedelta(days=DAYS)
FIRST, LAST = "2026-11-01-00:00", "2026-11-07-23:00"
DAY5 = START + dt.timedelta(days=4)
KLINES = "/api/v3/klines"


def test_complete_hours_are_those_fetched_through_their_end():
    noon = dt.datetime(2026, 11, 5, 12, 30, tzinfo=UTC)
    recorded = {"2026-11-05-11:00": noon, "2026-11-05-12:00": noon, "2026-11-05-10:00": None, "2026-11-05-09:00": noon}
    assert complete_hours(recorded) == {"2026-11-05-09:00", "2026-11-05-11:00"}  # 12:00 was still filling


def test_spans_cover_the_missing_runs_a_day_at_most():
    keys = [f"2026-11-0{d}-{h:02d}:00" for d in (1, 2, 3) for h in range(24)]
    complete = set(keys[:30]) | {keys[40]}
    spans = spans_to_fetch(keys, complete, dt.timedelta(hours=24))
    assert spans == [
        (dt.datetime(2026, 11, 2, 6, tzinfo=UTC), dt.datetime(2026, 11, 2, 16, tzinfo=UTC)),
        (dt.datetime(2026, 11, 2, 17, tzinfo=UTC), dt.datetime(2026, 11, 3, 17, tzinfo=UTC)),
        (dt.datetime(2026, 11, 3, 17, tzinfo=UTC), dt.datetime(2026, 11, 4, tzinfo=UTC)),
    ]
    assert spans_to_fetch(keys, set(keys), dt.timedelta(hours=24)) == []


@pytest.fixture
def server():
    with ExchangeServer() as s:
        yield s


def backfill(home, server, instance, tags=None, raise_on_error=True, feed=None):
    feed = feed or CcxtFeed(base_url=server.base_url, backoff_seconds=0.01, timeout_seconds=1.0, max_retries=0)
    resources = pipeline_resources(home, END + dt.timedelta(days=1), feed=feed)
    tags = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST, **(tags or {})}
    return dg.materialize(
        default_assets, selection=["feed_records"], resources=resources, tags=tags, instance=instance, raise_on_error=raise_on_error
    )


def hashes(home) -> dict[str, str]:
    lake = Lake(home)
    return {str(p.relative_to(lake.root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in lake.files("feed_records")}


@pytest.mark.process
def test_a_backfill_that_failed_on_day_five_resumes_from_day_five(server, tmp_path):
    # The reference: the whole range in one go.
    with dg.DagsterInstance.ephemeral() as instance:
        assert backfill(tmp_path / "full", server, instance).success
    full_requests = server.requests.count(KLINES)
    server.requests.clear()

    with dg.DagsterInstance.ephemeral() as instance:
        # The exchange goes down from day 5: the run fails (after its step retries).
        server.down_from = int(DAY5.timestamp() * 1000)
        failed = backfill(tmp_path / "home", server, instance, raise_on_error=False)
        assert not failed.success
        # Days 1-4 are on record, hour by hour, in Dagster; day 5 onwards is not.
        recorded = instance.get_materialized_partitions(dg.AssetKey("feed_records"))
        assert len(recorded) == 4 * 24 and max(recorded) == "2026-11-04-23:00"
        # The step retries already skipped days 1-4: one failed request per attempt after the first pass.
        attempts = 1 + 2  # the asset's RetryPolicy(max_retries=2)
        assert server.requests.count(KLINES) == full_requests * 4 // DAYS + attempts
        server.requests.clear()

        # The exchange is back; the same range again fetches days 5-7 only.
        server.down_from = None
        assert backfill(tmp_path / "home", server, instance).success
        resumed_requests = server.requests.count(KLINES)
        assert resumed_requests == full_requests * 3 // DAYS
        assert hashes(tmp_path / "home") == hashes(tmp_path / "full")
        assert len(instance.get_materialized_partitions(dg.AssetKey("feed_records"))) == DAYS * 24
        print(f"\nklines requests: full backfill {full_requests}, resumed after failing on day 5 {resumed_requests}")

        # Everything complete: nothing is fetched; the refetch tag fetches it all again.
        server.requests.clear()
        assert backfill(tmp_path / "home", server, instance).success
        assert server.requests.count(KLINES) == 0
        assert backfill(tmp_path / "home", server, instance, tags={REFETCH_TAG: "1"}).success
        assert server.requests.count(KLINES) == full_requests
        assert hashes(tmp_path / "home") == hashes(tmp_path / "full")


SHIM = "/v1/shims/tradingview/history"


@pytest.mark.process
def test_a_pyth_candle_backfill_resumes_and_asks_a_day_per_request(tmp_path):
    with HermesServer(now=int(END.timestamp()) + 86_400) as pyth:
        feed = PythFeed(kind="candle", base_url=pyth.base_url, benchmarks_url=pyth.base_url, backoff_seconds=0.01, timeout_seconds=2.0, max_retries=0)
        with dg.DagsterInstance.ephemeral() as instance:
            assert backfill(tmp_path / "full", None, instance, feed=feed).success
        full_requests = [p for p, _ in pyth.requests].count(SHIM)
        assert full_requests == 2 * DAYS  # a day of minutes per subject per request (10,080 steps each)
        pyth.requests.clear()

        with dg.DagsterInstance.ephemeral() as instance:
            pyth.down_from = int(DAY5.timestamp())
            assert not backfill(tmp_path / "home", None, instance, feed=feed, raise_on_error=False).success
            recorded = instance.get_materialized_partitions(dg.AssetKey("feed_records"))
            assert len(recorded) == 4 * 24 and max(recorded) == "2026-11-04-23:00"
            pyth.requests.clear()
            pyth.down_from = None
            assert backfill(tmp_path / "home", None, instance, feed=feed).success
            resumed_requests = [p for p, _ in pyth.requests].count(SHIM)
            assert resumed_requests == 2 * 3  # days 5-7 only
            assert hashes(tmp_path / "home") == hashes(tmp_path / "full")
        print(f"\npyth shim requests: full 7-day backfill {full_requests}, resumed after failing on day 5 {resumed_requests}")

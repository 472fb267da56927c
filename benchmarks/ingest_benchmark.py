"""Ingestion throughput: a 30-day one-minute backfill of two subjects from the loopback exchange.

Usage: .venv/bin/python benchmarks/ingest_benchmark.py [--days 30] [--subjects BTC,ETH] [--rate-limit-ms 0]

Starts the tests' Binance-shaped loopback server (`tests/exchange_server.py`) in this process,
points the unmodified ccxt binance class at it (`CcxtFeed(base_url=...)`, ccxt's own rate limiter
on unless `--rate-limit-ms` overrides the exchange's spacing) and materializes `feed_records` for
the whole range as one single-run backfill (`dg.materialize` with the partition-range tags) into
a temporary lake. Prints records written, wall time, records per second, the number of klines
requests, and the process's peak RSS. Then re-runs the same range and reports whether every file
stayed byte-identical. The server runs in the same process, so its work counts in the figures.
"""

import argparse
import datetime as dt
import hashlib
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg  # noqa: E402

from assets import default_assets  # noqa: E402
from coordinator_dagster.lake.store import Lake  # noqa: E402
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT  # noqa: E402
from resources import CcxtFeed, ClockResource, ContractResource, InProcessModelRunner, LakeResource  # noqa: E402
from tests.exchange_server import ExchangeServer  # noqa: E402

START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


def hashes(lake: Lake) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in lake.files("feed_records")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--subjects", default="BTC,ETH")
    parser.add_argument("--rate-limit-ms", type=int, default=0, help="0: ccxt's own binance rate limit")
    args = parser.parse_args()
    subjects = [s.strip().upper() for s in args.subjects.split(",")]
    end = START + dt.timedelta(days=args.days)
    last_key = (end - dt.timedelta(hours=1)).strftime(WINDOW_KEY_FORMAT)
    tags = {"dagster/asset_partition_range_start": START.strftime(WINDOW_KEY_FORMAT), "dagster/asset_partition_range_end": last_key}
    with ExchangeServer(symbols=tuple(f"{s}/USDT" for s in subjects)) as server, tempfile.TemporaryDirectory() as tmp:
        resources = {
            "lake": LakeResource(home=tmp),
            "contract": ContractResource(),
            "feed": CcxtFeed(subjects=subjects, base_url=server.base_url, rate_limit_ms=args.rate_limit_ms),
            "model_runner": InProcessModelRunner(),
            "clock": ClockResource(fixed_now=(end + dt.timedelta(days=1)).isoformat()),
        }
        began = time.perf_counter()
        result = dg.materialize(default_assets, selection=["feed_records"], resources=resources, tags=tags)
        elapsed = time.perf_counter() - began
        assert result.success
        lake = Lake(tmp)
        records = lake.read_window("feed_records", START, end).height
        requests = server.requests.count("/api/v3/klines")
        first = hashes(lake)
        began = time.perf_counter()
        dg.materialize(default_assets, selection=["feed_records"], resources=resources, tags=tags)
        rerun = time.perf_counter() - began
        identical = hashes(lake) == first
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"backfill: {args.days} days x {len(subjects)} subjects of 1m candles, {len(first)} hourly files, {requests} klines requests")
    print(f"records: {records:,} in {elapsed:.2f} s = {records / elapsed:,.0f} records/s (ccxt rate limit: {'exchange default' if not args.rate_limit_ms else f'{args.rate_limit_ms} ms'})")
    print(f"re-run of the same range: {rerun:.2f} s, files byte-identical: {identical}")
    print(f"peak RSS: {peak_mb:,.0f} MB")
    print(f"machine: {platform.python_version()} on {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores")


if __name__ == "__main__":
    main()

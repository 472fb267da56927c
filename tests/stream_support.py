"""Helpers shared by the live listener's tests: a listener on a temporary lake with an
ephemeral Dagster instance, a slow writer (a disk that cannot keep up, or that writes nothing
until the test opens its gate), and polling."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import dagster as dg
import polars as pl

from coordinator_dagster.cli.listener_setup import dagster_reporter
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.feeds.streaming.listener import Listener, ListenerConfig
from coordinator_dagster.feeds.streaming.sources import StreamSource
from coordinator_dagster.feeds.streaming.writer import LakeWriter
from coordinator_dagster.feeds.sources import Source

UTC = dt.timezone.utc


def fast_config(**overrides) -> ListenerConfig:
    """Short backoffs, no start-up backfill, gaps fetched as soon as their steps have closed."""
    values = dict(backoff_initial=0.05, backoff_max=0.2, initial_backfill=dt.timedelta(0), gap_settle_seconds=0.0, flush_interval=0.05)
    values.update(overrides)
    return ListenerConfig(**values)


class SlowWriter(LakeWriter):
    """A LakeWriter on a disk that takes `delay` s per write and, given a `gate`, writes nothing
    until the gate is set: a test then knows the buffer filled up, however fast the machine."""

    def __init__(self, *args, delay: float, gate: threading.Event | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.delay = delay
        self.gate = gate

    def write(self, records, *, via="stream"):
        if self.gate is not None:
            self.gate.wait()
        time.sleep(self.delay)
        return super().write(records, via=via)


def make_listener(
    home,
    stream: StreamSource,
    gap_source: Source | None,
    *,
    config: ListenerConfig | None = None,
    slow: float = 0.0,
    gate: threading.Event | None = None,
    instance: dg.DagsterInstance | None = None,
) -> tuple[Listener, Lake, dg.DagsterInstance]:
    """A listener writing into a lake at `home`, reporting to `instance` (default: an ephemeral one)."""
    lake = Lake(home)
    instance = instance or dg.DagsterInstance.ephemeral()
    kwargs = dict(source=stream.source, kind=stream.kind, granularity=stream.granularity, report=dagster_reporter(instance))
    writer = SlowWriter(lake, delay=slow, gate=gate, **kwargs) if slow or gate else LakeWriter(lake, **kwargs)
    return Listener(stream, writer, gap_source, config or fast_config()), lake, instance


# Bounds a wait for something that will happen, never how fast: on two cores shared with other
# suites a listener's first connection (importing ccxt, loading markets) has taken over 20 s.
WAIT_SECONDS = 120.0


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_SECONDS, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stored(lake: Lake) -> pl.DataFrame:
    """Every feed record in the lake, read while the listener may be replacing partitions: each
    file is opened once and read from that handle, so a rename in between cannot mix two files."""
    frames = []
    for path in lake.files("feed_records"):
        with open(path, "rb") as handle:
            frames.append(pl.read_parquet(handle))
    if not frames:
        return pl.DataFrame(schema=lake.table("feed_records").schema)
    return pl.concat(frames).sort("subject", "ts_event")


def ms(ts: dt.datetime) -> int:
    return int(ts.timestamp() * 1000)


def materializations(instance: dg.DagsterInstance) -> list[dg.AssetMaterialization]:
    records = instance.fetch_materializations(dg.AssetKey("feed_records"), limit=1000).records
    return [r.asset_materialization for r in records]

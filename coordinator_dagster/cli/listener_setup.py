"""Assembling a listener from the node's settings (what `coordinator feeds listen` runs): the
feed client of the resource the code location would use, its stream adapter, the lake and the
instance."""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from coordinator_dagster.settings import Settings
from coordinator_dagster.feeds.streaming.listener import Listener, ListenerConfig
from coordinator_dagster.feeds.streaming.sources import stream_source
from coordinator_dagster.feeds.streaming.writer import LakeWriter, Report, WriteEvent

log = logging.getLogger("coordinator.feeds.listen")


def dagster_instance() -> Any:
    """The node's Dagster instance when DAGSTER_HOME is set, else None (writes go on, unreported)."""
    if not os.environ.get("DAGSTER_HOME"):
        log.warning("DAGSTER_HOME is not set: writes go to the lake but are not reported to Dagster as asset events")
        return None
    import dagster as dg

    return dg.DagsterInstance.get()


def dagster_reporter(instance: Any) -> Report:
    """Each lake write reported to `instance` as a runless materialization of its partition."""
    import dagster as dg

    def report(event: WriteEvent) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=event.table, partition=event.partition, description=event.description, metadata=event.metadata)
        )

    return report


def build_listener(settings: Settings, config: ListenerConfig, *, idle_timeout: float = 30.0, instance: Any = None) -> Listener:
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.definitions import feed_resource
    from coordinator_dagster.lake.store import Lake

    # The client of the resource the code location builds, with secrets (dg.EnvVar) resolved as
    # at launch.
    feed = feed_resource(settings).process_config_and_initialize().source()
    lake = Lake.for_contract(settings.home, load_contract())
    stream = stream_source(feed, ws_url=settings.feed_ws_url, idle_timeout=idle_timeout)
    report = dagster_reporter(instance) if instance is not None else None
    writer = LakeWriter(lake, source=feed.source_name, kind=feed.kind, granularity=feed.granularity, report=report)
    log.info("listening: %s → %s", stream.describe(), lake.root / "feed_records")
    return Listener(stream, writer, feed, config)


def listener_config(
    *, capacity: int, backoff: float, backoff_max: float, initial_backfill_minutes: float, max_gap_hours: float
) -> ListenerConfig:
    return ListenerConfig(
        capacity=capacity,
        backoff_initial=backoff,
        backoff_max=backoff_max,
        initial_backfill=dt.timedelta(minutes=initial_backfill_minutes),
        max_gap_fill=dt.timedelta(hours=max_gap_hours),
    )

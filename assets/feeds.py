"""`feed_records`: raw market data per hourly window, fetched from the configured feed source,
with the feed checks (duplicates, order, gaps, freshness, frozen and non-positive prices)
emitted alongside."""

import datetime as dt

import dagster as dg
import polars as pl

from assets.metadata import check_result, price_charts, table_metadata
from coordinator_dagster.feeds import checks as feed_checks
from coordinator_dagster.lake import schemas
from coordinator_dagster.feeds.records import dedupe_records
from coordinator_dagster.feeds.granularity import floor_time
from coordinator_dagster.partitions import WINDOW_PARTITIONS, window_keys_between
from resources import ClockResource, Contract, FeedSource, LakeResource
from coordinator_dagster.feeds.sources import UnsupportedFeedError

# A range is fetched and written a day at a time: the run log shows progress, a cancelled or
# failed backfill keeps every finished day, and a day that fails writes none of its hours.
CHUNK = dt.timedelta(hours=24)

FEED_CHECK_SPECS = [
    dg.AssetCheckSpec(name, asset="feed_records", blocking=name in feed_checks.BLOCKING) for name in feed_checks.ALL_FEED_CHECKS
]


def _chunks(start: dt.datetime, end: dt.datetime):
    while start < end:
        yield start, min(start + CHUNK, end)
        start += CHUNK


@dg.asset(
    partitions_def=WINDOW_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"polars", "parquet"},
    group_name="pipeline",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL),
    check_specs=FEED_CHECK_SPECS,
)
def feed_records(
    context: dg.AssetExecutionContext,
    feed: FeedSource,
    lake: LakeResource,
    clock: ClockResource,
    contract: Contract,
) -> dg.MaterializeResult:
    """One row per tick or candle of one subject (grain: source × subject × ts_event).

    Fetches exactly the partition window (a backfill range in one run, a day at a time), keeps
    only candles that had closed by now, and replaces each hour's file: re-running a window never
    duplicates. The checks judge what the source delivered; gaps it left are recorded there
    (blocking), never filled in.
    """
    window = context.partition_time_window
    store = lake.get(contract)
    now = clock.now()
    closed = min(window.end, floor_time(now, feed.step_seconds))
    delivered: list[pl.DataFrame] = []
    written = 0
    chunks = list(_chunks(window.start, window.end))
    for i, (start, end) in enumerate(chunks, 1):
        fetch_end = min(end, closed)
        # Fetch fully before writing: a fetch that fails raises here and no hour of the chunk changes.
        try:
            frame = feed.fetch(start, fetch_end, now=now) if fetch_end > start else schemas.empty(schemas.FEED_RECORDS)
        except UnsupportedFeedError as error:
            # A configuration problem: retrying the run cannot help.
            raise dg.Failure(str(error), allow_retries=False) from error
        delivered.append(frame)
        clean = dedupe_records(frame)
        keys = window_keys_between(start, end)
        store.write_windows("feed_records", clean, "ts_event", keys)
        written += clean.height
        if len(chunks) > 1:
            context.log.info(f"feed_records: {i}/{len(chunks)} days, {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M}: {clean.height} records ({written} so far)")
    store.ensure_catalog()
    everything = pl.concat(delivered)
    frame = dedupe_records(everything)
    live = now - window.end <= dt.timedelta(seconds=feed.freshness_seconds)
    outcomes = feed_checks.feed_outcomes(
        everything, feed.subjects, window.start, closed, feed.step_seconds, now, feed.check_settings(), live
    )
    keys = window_keys_between(window.start, window.end)
    context.log.info(f"feed_records: {frame.height} records written to {len(keys)} hour partitions")
    failed = [o.name for o in outcomes if not o.passed]
    if failed:
        context.log.warning(f"feed_records: checks failed for {keys[0]} … {keys[-1]}: {', '.join(failed)}")
    return dg.MaterializeResult(
        check_results=[check_result(o) for o in outcomes],
        metadata=table_metadata(
            frame,
            partitions=len(keys),
            source=feed.source_name,
            subjects=", ".join(feed.subjects),
            newest_record=str(frame["ts_event"].max()) if frame.height else "none",
            prices=dg.MetadataValue.md(price_charts(frame)),
        ),
    )

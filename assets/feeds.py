"""`feed_records`: raw market data per hourly window, fetched from the configured feed source,
with the feed checks (duplicates, order, gaps, freshness, frozen and non-positive prices)
emitted alongside. A backfill records each hour as it is written and, run again (a retry, a
re-execution, the same range once more), fetches only the hours not yet complete
(`coordinator_dagster.feeds.resume`)."""

import datetime as dt

import dagster as dg
import polars as pl

from assets.metadata import check_result, price_charts, table_metadata
from coordinator_dagster.feeds import checks as feed_checks
from coordinator_dagster.lake import schemas
from coordinator_dagster.feeds.records import dedupe_records
from coordinator_dagster.feeds.granularity import floor_time
from coordinator_dagster.feeds.resume import CLOSED_THROUGH, complete_hours, spans_to_fetch
from coordinator_dagster.partitions import WINDOW_PARTITIONS, window_keys_between, window_start
from resources import ClockResource, Contract, FeedSource, LakeResource
from coordinator_dagster.feeds.sources import UnsupportedFeedError

# A range is fetched and written a day at a time: the run log shows progress, a cancelled or
# failed backfill keeps every finished day, and a day that fails writes none of its hours.
CHUNK = dt.timedelta(hours=24)
# A run tagged with this fetches every hour of its range again, complete or not.
REFETCH_TAG = "coordinator/refetch"

FEED_CHECK_SPECS = [
    dg.AssetCheckSpec(name, asset="feed_records", blocking=name in feed_checks.BLOCKING) for name in feed_checks.ALL_FEED_CHECKS
]


def _closed_through(context: dg.AssetExecutionContext, keys: list[str]) -> dict[str, dt.datetime | None]:
    """Each hour's `closed_through` as its newest materialization in the instance records it."""
    found: dict[str, dt.datetime | None] = {}
    cursor = None
    while True:
        page = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=keys), limit=1000, cursor=cursor
        )
        for record in page.records:
            event = record.asset_materialization
            if event is None or event.partition in found:
                continue  # newest first: an hour's first record is its newest
            through = event.metadata.get(CLOSED_THROUGH)
            found[event.partition] = dt.datetime.fromisoformat(through.value) if through is not None else None
        if not page.has_more:
            return found
        cursor = page.cursor


def _stored_hours(store, window: dg.TimeWindow, hours: set[str]) -> list[tuple[dt.datetime, pl.DataFrame]]:
    """The lake's records of `hours` (keys within `window`), one frame per hour."""
    if not hours:
        return []
    stored = store.read_window("feed_records", window.start, window.end).select(schemas.FEED_RECORDS.keys())
    starts = sorted(window_start(key) for key in hours)
    hour = pl.col("ts_event").dt.truncate("1h")
    return [(start, stored.filter(hour == start)) for start in starts]


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
    keys = window_keys_between(window.start, window.end)
    # A range (a backfill) skips the hours a previous run completed; one hour (the poll, an
    # operator's re-materialization) is always fetched again.
    resume = len(keys) > 1 and context.run.tags.get(REFETCH_TAG, "").lower() not in ("1", "true")
    complete = complete_hours(_closed_through(context, keys)) if resume else set()
    spans = spans_to_fetch(keys, complete, CHUNK)
    if complete:
        context.log.info(f"feed_records: {len(complete)} of {len(keys)} hours already complete; fetching {len(keys) - len(complete)}")
    delivered: list[tuple[dt.datetime, pl.DataFrame]] = []
    written = 0
    for i, (start, end) in enumerate(spans, 1):
        fetch_end = min(end, closed)
        # Fetch fully before writing: a fetch that fails raises here and no hour of the chunk changes.
        try:
            frame = feed.fetch(start, fetch_end, now=now) if fetch_end > start else schemas.empty(schemas.FEED_RECORDS)
        except UnsupportedFeedError as error:
            # A configuration problem: retrying the run cannot help.
            raise dg.Failure(str(error), allow_retries=False) from error
        delivered.append((start, frame))
        clean = dedupe_records(frame)
        span_keys = window_keys_between(start, end)
        store.write_windows("feed_records", clean, "ts_event", span_keys)
        written += clean.height
        if len(keys) > 1:
            # Each hour is on record as soon as it is written, so a run that fails later keeps it.
            per_hour = clean.group_by(pl.col("ts_event").dt.truncate("1h").alias("hour")).len()
            counts = {row["hour"]: row["len"] for row in per_hour.iter_rows(named=True)}
            for key in span_keys:
                context.log_event(
                    dg.AssetMaterialization(
                        asset_key=context.asset_key,
                        partition=key,
                        metadata={CLOSED_THROUGH: closed.isoformat(), "dagster/row_count": counts.get(window_start(key), 0)},
                    )
                )
        if len(spans) > 1:
            context.log.info(f"feed_records: {i}/{len(spans)} pieces, {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M}: {clean.height} records ({written} so far)")
    store.ensure_catalog()
    # The checks judge the whole window in time order: what was fetched now as delivered, the
    # skipped hours as stored.
    pieces = [*delivered, *_stored_hours(store, window, complete)]
    everything = pl.concat([frame for _, frame in sorted(pieces, key=lambda piece: piece[0])]) if pieces else schemas.empty(schemas.FEED_RECORDS)
    frame = dedupe_records(everything)
    live = now - window.end <= dt.timedelta(seconds=feed.freshness_seconds)
    outcomes = feed_checks.feed_outcomes(
        everything, feed.subjects, window.start, closed, feed.step_seconds, now, feed.check_settings(), live
    )
    context.log.info(f"feed_records: {frame.height} records written to {len(keys)} hour partitions")
    failed = [o.name for o in outcomes if not o.passed]
    if failed:
        context.log.warning(f"feed_records: checks failed for {keys[0]} … {keys[-1]}: {', '.join(failed)}")
    return dg.MaterializeResult(
        check_results=[check_result(o) for o in outcomes],
        metadata=table_metadata(
            frame,
            partitions=len(keys),
            hours_fetched=len(keys) - len(complete),
            **{CLOSED_THROUGH: closed.isoformat()},
            source=feed.source_name,
            subjects=", ".join(feed.subjects),
            newest_record=str(frame["ts_event"].max()) if frame.height else "none",
            prices=dg.MetadataValue.md(price_charts(frame)),
        ),
    )

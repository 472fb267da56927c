"""Schedules: minute-by-minute ingestion of the live window (unless a live listener writes it),
checkpoints per period, and daily feed retention."""

import datetime as dt

import dagster as dg

from coordinator_dagster.feeds.granularity import granularity_seconds
from coordinator_dagster.partitions import period_key_for, period_window, window_key
from sensors.jobs import ingest_job, retention_job


def build_ingest_schedule(granularity: str, live: bool = False) -> dg.ScheduleDefinition:
    """The minute poll of the live window. With `live` (FEED_LIVE=1) `coordinator feeds listen`
    writes feed_records as the data arrives, so the poll starts STOPPED: polling on top would
    spend rate limit and launch a run a minute for nothing. An operator can still start it from
    the UI (e.g. while the listener is down): a poll run rewrites the hour with the same closed
    records the listener writes."""
    step = granularity_seconds(granularity)
    status = dg.DefaultScheduleStatus.STOPPED if live else dg.DefaultScheduleStatus.RUNNING

    @dg.schedule(
        job=ingest_job,
        cron_schedule="* * * * *",
        execution_timezone="UTC",
        default_status=status,
        name="ingest_schedule",
    )
    def ingest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        """Every minute, refresh the hour holding the newest closed record (at :00 that is the
        previous hour, which gets its last candle)."""
        tick = context.scheduled_execution_time.astimezone(dt.timezone.utc)
        newest_closed = tick - dt.timedelta(seconds=step)
        return dg.RunRequest(partition_key=window_key(newest_closed), tags={"coordinator/tick": tick.isoformat()})

    return ingest_schedule


def build_checkpoint_schedule(checkpoint_job, partitions_def: dg.PartitionsDefinition) -> dg.ScheduleDefinition:
    """Shortly after each period ends, build the checkpoint of the period that just ended.

    Periods of whole days other than a week (listed partitions, see partitions.py) have no cron of
    their own: the schedule ticks daily and builds a period only on the day it ended.

    Written out rather than `build_schedule_from_partitioned_job`, which calls an API that
    Dagster 1.13 deprecates (and the test suite turns deprecations into errors).
    """
    # Five minutes past the boundary: the period's last snapshots have been scored by then.
    period_cron = partitions_def.cron_schedule if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition) else "0 0 * * *"
    # Every period starts on an hour (partitions.py refuses shorter ones): its cron's minute is 0.
    _minute, *rest = period_cron.split()
    cron = " ".join(["5", *rest])

    @dg.schedule(
        job=checkpoint_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        name="checkpoint_schedule",
    )
    def checkpoint_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time.astimezone(dt.timezone.utc)
        # The period holding the moment just before its boundary is the one that just ended (the
        # tick is 5 minutes past an hour boundary).
        ended_at = tick - dt.timedelta(minutes=10)
        key = period_key_for(partitions_def, ended_at)
        if key is None:
            return dg.SkipReason("no checkpoint period has ended yet")
        if period_window(partitions_def, key)[1] > tick:
            return dg.SkipReason(f"checkpoint period {key} has not ended yet")
        return dg.RunRequest(run_key=f"checkpoint:{key}", partition_key=key)

    return checkpoint_schedule


# Daily, at an odd minute away from the checkpoint schedule's :05.
retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule",
    job=retention_job,
    cron_schedule="17 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Delete feed_records hours past FEED_RECORD_TTL_DAYS that no unpaid checkpoint needs.",
)

"""Schedules: minute-by-minute ingestion of the live window, and checkpoints per period."""

import datetime as dt

import dagster as dg

from coordinator_dagster.granularity import granularity_seconds
from coordinator_dagster.partitions import window_key
from sensors.jobs import ingest_job


def build_ingest_schedule(granularity: str) -> dg.ScheduleDefinition:
    step = granularity_seconds(granularity)

    @dg.schedule(
        job=ingest_job,
        cron_schedule="* * * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        name="ingest_schedule",
    )
    def ingest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        """Every minute, refresh the hour holding the newest closed record (at :00 that is the
        previous hour, which gets its last candle)."""
        tick = context.scheduled_execution_time.astimezone(dt.timezone.utc)
        newest_closed = tick - dt.timedelta(seconds=step)
        return dg.RunRequest(partition_key=window_key(newest_closed), tags={"coordinator/tick": tick.isoformat()})

    return ingest_schedule


def build_checkpoint_schedule(checkpoint_job) -> dg.ScheduleDefinition:
    """At the start of each period, build the checkpoint of the period that just ended."""
    return dg.build_schedule_from_partitioned_job(
        checkpoint_job, name="checkpoint_schedule", default_status=dg.DefaultScheduleStatus.RUNNING
    )

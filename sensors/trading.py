"""The trading pack's live loop: `trading_job` replays an hour into portfolios and refreshes the
snapshots and the leaderboard; `trading_sensor` requests it on the score sensor's plan (an hour
is ready once its rounds' horizons have passed and the feed has covered them), under its own
run keys (`trade:<round>`, `trade-close:<hour>`) so its runs never pass for score runs.
"""

import dataclasses

import dagster as dg

from coordinator_dagster.round_schedule import RoundPlan
from resources import ClockResource, Contract, FeedSource, LakeResource
from sensors.jobs import checkpoint_job, ingest_job, predict_job
from sensors.rounds import SENSOR_INTERVAL_SECONDS, _result, predict_sensor, score_plan

# The score plan's run-key kinds, as the trading sensor names them.
TRADING_RUN_KINDS = {"score": "trade", "close": "trade-close"}

trading_job = dg.define_asset_job(
    "trading_job",
    selection=["trading_replay", "snapshots", "leaderboard"],
    description="Replay a window's orders into the portfolios, refresh its snapshots and the leaderboard.",
)


@dg.sensor(job=trading_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def trading_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, contract: Contract, feed: FeedSource, clock: ClockResource):
    """Requests the replay of a window once its rounds are resolvable and their feed has landed."""
    return _result(context, "trading", trading_plan(score_plan(context, lake, contract, feed, clock)))


def trading_plan(plan: RoundPlan) -> RoundPlan:
    """The score plan with the trading sensor's run keys (same rounds, partitions, tags and cursor)."""
    def rekey(run_key: str) -> str:
        kind, _, stamp = run_key.partition(":")
        return f"{TRADING_RUN_KINDS[kind]}:{stamp}"

    return dataclasses.replace(plan, runs=[dataclasses.replace(run, run_key=rekey(run.run_key)) for run in plan.runs])


trading_jobs = [ingest_job, predict_job, trading_job, checkpoint_job]
trading_sensors = [predict_sensor, trading_sensor]

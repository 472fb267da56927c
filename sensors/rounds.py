"""The predict and score sensors: they start work when the outside world is ready.

What is due, the cursor and the run keys are decided by `coordinator_dagster.round_schedule`
(plain functions over the contract, the clock and the lake); a sensor reads its resources, asks
for the plan, and turns it into run requests or a skip with the reason.
"""

import datetime as dt

import dagster as dg

from coordinator_dagster.engine.micro_scorer import engine_scoring
from coordinator_dagster.engine.round_engine import engine_alive
from coordinator_dagster.round_schedule import RoundPlan, plan_predict_runs, plan_score_runs
from resources import ClockResource, Contract, FeedSource, LakeResource
from sensors.jobs import predict_job, score_job

# The sensor daemon loops every ~5 s; asking for 5 s makes its "too soon" check skip every
# other loop (ticks 10 s apart, measured), so ask for less and let the loop set the pace.
SENSOR_INTERVAL_SECONDS = 1


def _predicting_live(instance: dg.DagsterInstance) -> bool:
    """Has a sensor-requested predict run been created in the last ten minutes?"""
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=predict_job.name, created_after=since), limit=1)
    return bool(records)


def _result(context: dg.SensorEvaluationContext, kind: str, plan: RoundPlan) -> dg.SensorResult | dg.SkipReason:
    if not plan.runs:
        if plan.cursor is not None:  # rounds passed over (the round engine recorded them)
            return dg.SensorResult(skip_reason=plan.skip_reason, cursor=plan.cursor)
        return dg.SkipReason(plan.skip_reason)
    if plan.waiting:
        context.log.info("; ".join(plan.waiting))
    requests = [dg.RunRequest(run_key=run.run_key, partition_key=run.partition_key, tags=run.tags) for run in plan.runs]
    return dg.SensorResult(run_requests=_from_partitions_start(context, kind, requests), cursor=plan.cursor)


def _from_partitions_start(context: dg.SensorEvaluationContext, kind: str, run_requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    """The requests for hours from the partitions start on (PARTITIONS_START): an earlier hour holds
    nothing of this node (a first start's closing pass can reach back before its data)."""
    if context.repository_def is None:  # a bare test context: no definitions to ask
        return run_requests
    first = context.repository_def.get_job(f"{kind}_job").partitions_def.get_first_partition_key()
    kept = [r for r in run_requests if first is not None and r.partition_key >= first]
    if len(kept) < len(run_requests):
        context.log.info(f"not requested (before the partitions start {first}): {[r.partition_key for r in run_requests if r not in kept]}")
    return kept


@dg.sensor(job=predict_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def predict_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, contract: Contract, feed: FeedSource, clock: ClockResource):
    """Requests the predict run of each due round once the candle closing at the round has landed;
    while the round engine is alive, only of the rounds it did not record in time (catch-up)."""
    store = lake.get(contract)
    plan = plan_predict_runs(contract, store, feed.step_seconds, clock.now(), context.cursor, engine_live=engine_alive(store.home))
    return _result(context, "predict", plan)


@dg.sensor(job=score_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def score_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, contract: Contract, feed: FeedSource, clock: ClockResource):
    """Requests scoring of a round's window once its horizon has passed and its truth has landed."""
    return _result(context, "score", score_plan(context, lake, contract, feed, clock))


def score_plan(context: dg.SensorEvaluationContext, lake: LakeResource, contract: Contract, feed: FeedSource, clock: ClockResource) -> RoundPlan:
    """The rounds whose horizon has passed and whose truth has landed (also the trading sensor's
    plan); none the round engine's scorer (ROUND_ENGINE_SCORING) scored or, alive, will score."""
    store = lake.get(contract)
    return plan_score_runs(
        contract,
        store,
        feed.step_seconds,
        clock.now(),
        context.cursor,
        feed.check_settings(),
        predicting_live=_predicting_live(context.instance),
        engine=engine_scoring(store.home),
    )


default_sensors = [predict_sensor, score_sensor]

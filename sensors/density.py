"""The density predict and score sensors and their jobs (contracts with prediction profiles).

The plans are `coordinator_dagster.density_schedule`'s; these turn them into run requests the
way the point-round sensors do (`sensors.rounds`)."""

import dagster as dg

from coordinator_dagster.density_schedule import plan_density_predict_runs, plan_density_score_runs
from resources import ClockResource, Contract, LakeResource
from sensors.rounds import SENSOR_INTERVAL_SECONDS, _result

density_predict_job = dg.define_asset_job(
    "density_predict_job", selection=["density_predictions"], description="Ask every tracker a window's due density rounds."
)
density_score_job = dg.define_asset_job(
    "density_score_job",
    selection=["density_round_scores", "group_leaderboard"],
    description="Score a window's resolved density rounds (CRPS) and refresh the leaderboards by group.",
)


@dg.sensor(job=density_predict_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def density_predict_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, contract: Contract, clock: ClockResource):
    """Requests the run of each due profile round once its prices have landed (catch-up runs
    record the rounds passed over while the node was down as missed)."""
    plan = plan_density_predict_runs(contract, lake.get(contract), clock.now(), context.cursor)
    return _result(context, "density_predict", plan)


@dg.sensor(job=density_score_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def density_score_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, contract: Contract, clock: ClockResource):
    """Requests scoring of an hour's density rounds each time more of them have their truth."""
    plan = plan_density_score_runs(contract, lake.get(contract), clock.now(), context.cursor)
    return _result(context, "density_score", plan)


density_jobs = [density_predict_job, density_score_job]
density_sensors = [density_predict_sensor, density_score_sensor]

"""`predictions`: every registered model's answer to every round's input."""

import datetime as dt
import time

import dagster as dg
import polars as pl

from assets.inputs import inputs
from assets.metadata import counts_by, table_metadata
from coordinator_dagster.lake import schemas
from coordinator_dagster.partitions import WINDOW_PARTITIONS, window_keys_between
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG, parse_round_stamp, raw_input, split_missed
from coordinator_dagster.models.runner import ModelSpec, RoundRunner
from coordinator_dagster.statuses import PredictionStatus
from resources import ClockResource, Contract, LakeResource, ModelRunnerResource


def _predict(runner: RoundRunner, todo: pl.DataFrame, predicted_at: dt.datetime) -> pl.DataFrame:
    rows = []
    for item in todo.sort("round_ts", "scope_key").iter_rows(named=True):
        for outcome in runner.predict_round(raw_input(item), item["horizon_seconds"], item["step_seconds"]):
            rows.append(
                {
                    "prediction_id": f"{item['input_id']}/{outcome.model_id}",
                    "input_id": item["input_id"],
                    "scope_key": item["scope_key"],
                    "subject": item["subject"],
                    "model_id": outcome.model_id,
                    "round_ts": item["round_ts"],
                    "resolvable_at": item["resolvable_at"],
                    "status": outcome.status,
                    "value": outcome.value,
                    "output": outcome.output,
                    "failed_reason": outcome.failed_reason,
                    "latency_ms": outcome.latency_ms,
                    "predicted_at": predicted_at,
                }
            )
    return pl.DataFrame(rows, schema=schemas.PREDICTIONS) if rows else schemas.empty(schemas.PREDICTIONS)


def _missed(todo: pl.DataFrame, model_ids: list[str], now: dt.datetime) -> pl.DataFrame:
    """ABSENT rows, with the reason, for rounds the node did not predict in their time."""
    if todo.is_empty():
        return schemas.empty(schemas.PREDICTIONS)
    models = pl.DataFrame({"model_id": model_ids})
    rows = todo.join(models, how="cross").with_columns(
        (pl.col("input_id") + "/" + pl.col("model_id")).alias("prediction_id"),
        pl.lit(PredictionStatus.ABSENT.value).alias("status"),
        pl.lit(None, dtype=pl.Float64).alias("value"),
        pl.lit(None, dtype=pl.String).alias("output"),
        pl.format("round missed: the node was not predicting at {} (recorded at {})", pl.col("round_ts"), pl.lit(now)).alias(
            "failed_reason"
        ),
        pl.lit(None, dtype=pl.Float64).alias("latency_ms"),
        pl.lit(now).alias("predicted_at"),
    )
    return schemas.conform(rows.select(schemas.PREDICTIONS.names()), schemas.PREDICTIONS, "predictions")


def registry(specs: list[ModelSpec], statuses: dict[str, str], existing: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """The registered models, upserted: a model keeps its first `joined_at`; a model that leaves
    the manifest stays (inactive, status "removed"), so checkpoints of periods it took part in
    still find its cruncher index; one that comes back is active again."""
    current = pl.DataFrame(
        [
            {
                "model_id": spec.model_id,
                "name": spec.name,
                "cruncher": spec.cruncher,
                "cruncher_index": spec.cruncher_index,
                "entrypoint": spec.entrypoint,
                "joined_at": now,
                "active": True,
                "status": statuses.get(spec.model_id, "healthy"),
            }
            for spec in specs
        ],
        schema=schemas.MODELS,
    )
    joined = existing.select("model_id", pl.col("joined_at").alias("first_joined"))
    current = current.join(joined, on="model_id", how="left").with_columns(
        pl.coalesce("first_joined", "joined_at").alias("joined_at")
    ).drop("first_joined")
    gone = existing.join(current.select("model_id"), on="model_id", how="anti").with_columns(
        pl.lit(False).alias("active"), pl.lit("removed").alias("status")
    )
    return pl.concat([current, gone]).sort("model_id")


@dg.asset(
    partitions_def=WINDOW_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[inputs],
    kinds={"polars", "parquet"},
    group_name="pipeline",
)
def predictions(
    context: dg.AssetExecutionContext,
    model_runner: ModelRunnerResource,
    lake: LakeResource,
    clock: ClockResource,
    contract: Contract,
) -> dg.MaterializeResult:
    """One row per model per round input (grain: input_id × model_id).

    Status as created: PENDING (valid answer), FAILED (raised or invalid output, with the reason)
    or ABSENT (no answer in time); PENDING becomes SCORED once scored. Recorded predictions are
    facts: re-materializing a window only adds the rounds it lacks, in time order, and never
    rewrites an existing row. In a live run (tagged with its round by the predict sensor) a round
    more than one interval older than the live round is recorded ABSENT as missed rather than
    predicted late; a replay (no tag) predicts every round.
    """
    store = lake.get(contract)
    window = context.partition_time_window
    now = clock.now()
    intervals = {p.scope_key: p.prediction_interval_seconds for p in contract.scheduled_predictions}
    tag = context.run.tags.get(LIVE_ROUND_TAG)
    live_round = parse_round_stamp(tag) if tag else None
    # A replay runs on models of its own (fresh state), so it never disturbs the live ones.
    runner = model_runner.open(contract.output_type, replay=live_round is None)
    model_ids = [spec.model_id for spec in runner.specs]
    written = []
    # Where a run's time goes (run metadata; the round latency benchmark reads it).
    model_seconds = write_seconds = 0.0
    try:
        for key in window_keys_between(window.start, window.end):
            # Held across read-predict-write, so two runs of one hour cannot predict a round twice.
            with store.partition_lock("predictions", key):
                existing = store.read("predictions", key)
                round_inputs = store.read("inputs", key)
                todo = round_inputs.join(existing.select("input_id").unique(), on="input_id", how="anti")
                missed = schemas.empty(schemas.PREDICTIONS)
                if live_round is not None:
                    todo, late = split_missed(todo, live_round, intervals)
                    missed = _missed(late, model_ids, now)
                started = time.perf_counter()
                fresh = pl.concat([missed, _predict(runner, todo, now)])
                model_seconds += time.perf_counter() - started
                started = time.perf_counter()
                if not fresh.is_empty():
                    store.write("predictions", pl.concat([existing, fresh]).sort("round_ts", "scope_key", "model_id"), key)
                elif not store.exists("predictions", key):
                    store.write("predictions", existing, key)
                write_seconds += time.perf_counter() - started
            written.append(fresh)
            if not fresh.is_empty():
                context.log.info(f"predictions {key}: {todo.height} new rounds, {fresh.height} predictions")
        with store.partition_lock("models"):
            store.write("models", registry(runner.specs, runner.statuses, store.read("models"), now))
    finally:
        runner.close()
    store.ensure_catalog()
    new_rows = pl.concat(written) if written else schemas.empty(schemas.PREDICTIONS)
    return dg.MaterializeResult(
        metadata=table_metadata(
            new_rows.drop("output"),
            partitions=len(written),
            new_predictions=new_rows.height,
            new_by_status=counts_by(new_rows, "status"),
            model_seconds=round(model_seconds, 4),
            write_seconds=round(write_seconds, 4),
        )
    )

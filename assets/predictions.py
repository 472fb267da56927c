"""`predictions`: every registered model's answer to every round's input."""

import datetime as dt
import time

import dagster as dg
import polars as pl

from assets.inputs import inputs
from assets.metadata import counts_by, table_metadata
from coordinator_dagster.lake import schemas
from coordinator_dagster.partitions import WINDOW_PARTITIONS, window_keys_between
from coordinator_dagster.models.prediction_rows import missed_rows, predict_rows, registry
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG, parse_round_stamp, split_missed
from resources import ClockResource, Contract, LakeResource, ModelRunnerResource


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
                    missed = missed_rows(late, model_ids, now)
                started = time.perf_counter()
                fresh = pl.concat([missed, predict_rows(runner, todo, now)])
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

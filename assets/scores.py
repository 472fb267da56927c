"""`scores`: each resolved prediction scored against the ground truth from the feed."""

import datetime as dt

import dagster as dg
import polars as pl
from assets.feeds import feed_records
from assets.metadata import check_result, counts_by, markdown_table, score_summary, table_metadata
from assets.predictions import predictions
from coordinator_dagster.checks import SCORES_CHECKS, no_prediction_left_behind, scores_unique
from coordinator_dagster.scoring.ensembles import build_ensembles
from coordinator_dagster.partitions import WINDOW_PARTITIONS, window_keys_between, window_start
from coordinator_dagster.scoring.scores import score_predictions
from resources import ClockResource, Contract, FeedSource, LakeResource

# The truth of the window's last rounds lies in the next hour's feed. (The entry price of its
# first round is the close of the previous hour's last candle: that hour is in the lake already,
# as the round's input was built from it, so it needs no dependency here.)
_NEXT_HOUR = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=1)


@dg.asset(
    partitions_def=WINDOW_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[predictions, dg.AssetDep(feed_records, partition_mapping=_NEXT_HOUR)],
    kinds={"polars", "parquet"},
    group_name="pipeline",
    check_specs=[dg.AssetCheckSpec(name, asset="scores", blocking=True) for name in SCORES_CHECKS],
)
def scores(
    context: dg.AssetExecutionContext,
    feed: FeedSource,
    lake: LakeResource,
    clock: ClockResource,
    contract: Contract,
) -> dg.MaterializeResult:
    """One row per scored prediction (grain: prediction_id), a pure function of predictions,
    inputs and feed records (and the clock, for closing predictions whose truth never came).

    Recomputed whole on every materialization, so re-scoring history or auditing a score is a
    re-materialization. A failed score carries its reason; it never stops the other rows.
    With ensembles in the contract, their predictions are built here too (from the scores of
    the hours before each window, read from the lake) and scored like any model's.
    """
    store = lake.get(contract)
    window = context.partition_time_window
    now = clock.now()
    horizon = max((p.resolve_horizon_seconds for p in contract.scheduled_predictions), default=0)
    reach = dt.timedelta(seconds=horizon + feed.step_seconds)
    keys = window_keys_between(window.start, window.end)
    # The whole range in one pass (a backfill of a week is one vectorized scoring, not 168).
    preds = store.read_window("predictions", window.start, window.end)
    inputs = store.read_window("inputs", window.start, window.end)
    truth_feed = store.read_window("feed_records", window.start - reach, window.end + reach)
    out = score_predictions(contract, preds, inputs, truth_feed, now)
    if contract.ensembles:
        # Ensemble weights come from the scores before each hour: earlier hours from the lake,
        # hours of this range from this run's real-model scores.
        lookback = dt.timedelta(hours=max(e.lookback_hours for e in contract.ensembles))
        history = pl.concat([store.read_window("scores", window.start - lookback, window.start, column="round_ts"), out])
        ensemble = build_ensembles(contract, preds, history, [window_start(k) for k in keys])
        store.write_windows("ensemble_predictions", ensemble, "round_ts", keys)
        out = pl.concat([out, score_predictions(contract, ensemble, inputs, truth_feed, now)])
    store.write_windows("scores", out, "round_ts", keys)
    store.ensure_catalog()
    outcomes = [scores_unique(out), no_prediction_left_behind(preds, out, now, contract.ground_truth_grace_seconds)]
    return dg.MaterializeResult(
        check_results=[check_result(o) for o in outcomes],
        metadata=table_metadata(
            out.drop("result"),
            partitions=len(keys),
            by_success=counts_by(out, "success"),
            scoring_version=contract.scoring_version,
            mean_score=float(out["value"].mean()) if out["value"].drop_nulls().len() else None,
            failed_scores=int((~out["success"]).sum()) if out.height else 0,
            by_model=dg.MetadataValue.md(markdown_table(score_summary(out), limit=50)),
        )
    )

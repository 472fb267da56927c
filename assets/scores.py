"""`scores`: each resolved prediction scored against the ground truth from the feed."""

import dagster as dg
from assets.feeds import feed_records
from assets.metadata import check_result, counts_by, markdown_table, score_summary, table_metadata
from assets.predictions import predictions
from coordinator_dagster.checks import SCORES_CHECKS, no_prediction_left_behind, scores_unique
from coordinator_dagster.partitions import WINDOW_PARTITIONS
from coordinator_dagster.scoring_batches import score_window
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
    # The whole range in one pass (a backfill of a week is one vectorized scoring, not 168).
    scored = score_window(store, contract, window.start, window.end, now, feed.step_seconds)
    preds, out, keys = scored.predictions, scored.scores, scored.keys
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

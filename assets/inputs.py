"""`inputs`: the model-facing window of data for every prediction round."""

import dagster as dg
import polars.selectors as cs

from assets.feeds import feed_records
from assets.metadata import check_result, counts_by, table_metadata
from coordinator_dagster.feeds.checks import INPUTS_FINITE, INPUTS_UNIQUE, inputs_outcomes
from coordinator_dagster.partitions import WINDOW_PARTITIONS, window_keys_between
from coordinator_dagster.models.round_inputs import span_inputs
from resources import ClockResource, Contract, FeedSource, LakeResource


@dg.asset(
    partitions_def=WINDOW_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[feed_records],
    kinds={"polars", "parquet"},
    group_name="pipeline",
    check_specs=[dg.AssetCheckSpec(name, asset="inputs", blocking=True) for name in (INPUTS_UNIQUE, INPUTS_FINITE)],
)
def inputs(
    context: dg.AssetExecutionContext,
    feed: FeedSource,
    lake: LakeResource,
    clock: ClockResource,
    contract: Contract,
) -> dg.MaterializeResult:
    """One row per prediction round per scheduled scope (grain: scope_key × round_ts).

    A pure function of `feed_records`: the records (every field) that closed within the input
    window, a time span ending at the round, and the contract's input builder's output when it has
    one. Rounds in a feed gap, or not yet due, get no row. Status RECEIVED until the truth is
    known, then RESOLVED (derived in the lake's `inputs` view).
    """
    store = lake.get(contract)
    window = context.partition_time_window
    frame = span_inputs(store, contract, feed.step_seconds, window.start, window.end, clock.now())
    keys = window_keys_between(window.start, window.end)
    store.write_windows("inputs", frame, "round_ts", keys)
    store.ensure_catalog()
    return dg.MaterializeResult(
        check_results=[check_result(o) for o in inputs_outcomes(frame)],
        metadata=table_metadata(frame.drop(cs.starts_with("window_"), "model_input"), partitions=len(keys), rounds_by_scope=counts_by(frame, "scope_key"))
    )

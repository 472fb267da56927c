"""`snapshots`: one summary per model per hourly window."""


import dagster as dg

from assets.metadata import markdown_table, snapshot_summary, table_metadata
from assets.scores import scores
from coordinator_dagster.partitions import WINDOW_PARTITIONS, window_keys_between
from coordinator_dagster.scoring_batches import snapshot_window
from resources import Contract, LakeResource


@dg.asset(
    partitions_def=WINDOW_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[scores],
    kinds={"polars", "parquet"},
    group_name="pipeline",
)
def snapshots(context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract) -> dg.MaterializeResult:
    """One row per model per hour (grain: model_id × period_start): prediction, scored and
    failed counts, the aggregated score (failed scores excluded) and the contract's metrics."""
    store = lake.get(contract)
    window = context.partition_time_window
    keys = window_keys_between(window.start, window.end)
    out = snapshot_window(store, contract, window.start, window.end)
    store.ensure_catalog()
    return dg.MaterializeResult(
        metadata=table_metadata(
            out,
            partitions=len(keys),
            scoring_version=contract.scoring_version,
            by_model=dg.MetadataValue.md(markdown_table(snapshot_summary(out), limit=50)),
        )
    )

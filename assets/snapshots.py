"""`snapshots`: one summary per model per hourly window."""

import datetime as dt

import dagster as dg
import polars as pl

from assets.metadata import table_metadata
from assets.scores import scores
from coordinator_dagster import schemas
from coordinator_dagster.partitions import WINDOW_PARTITIONS, window_keys_between, window_start
from coordinator_dagster.snapshots import build_snapshots
from resources import ContractResource, LakeResource


@dg.asset(
    partitions_def=WINDOW_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[scores],
    kinds={"polars", "parquet"},
    group_name="pipeline",
)
def snapshots(context: dg.AssetExecutionContext, lake: LakeResource, contract: ContractResource) -> dg.MaterializeResult:
    """One row per model per hour (grain: model_id × period_start): prediction, scored and
    failed counts, the aggregated score (failed scores excluded) and the contract's metrics."""
    crunch = contract.get()
    store = lake.get(crunch)
    window = context.partition_time_window
    frames = []
    for key in window_keys_between(window.start, window.end):
        start = window_start(key)
        frame = build_snapshots(crunch, store.read("predictions", key), store.read("scores", key), start, start + dt.timedelta(hours=1))
        store.write("snapshots", frame, key)
        frames.append(frame)
    store.ensure_catalog()
    out = pl.concat(frames) if frames else schemas.empty(schemas.SNAPSHOTS)
    return dg.MaterializeResult(metadata=table_metadata(out, partitions=len(frames)))

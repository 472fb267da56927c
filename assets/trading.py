"""The trading pack's assets: `trading_replay` (predictions and the feed replayed hour by hour
into simulated portfolios) and its `snapshots` (each model's standing at every hour's end), both
thin wrappers of `coordinator_dagster.trading_lake`, which also ranks a trading contract for the
leaderboard and the checkpoints.

A trading build (`contract.trading` set) uses these in place of `scores` and the scored
`snapshots`; the portfolios are never a stored, mutable table: every hour's state is the replay
of the predictions and the feed from the hour before's state.
"""

import datetime as dt

import dagster as dg

from assets.feeds import feed_records
from assets.inputs import inputs
from assets.metadata import markdown_table, table_metadata
from assets.predictions import predictions
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT, WINDOW_PARTITIONS, window_keys_between
from coordinator_dagster.trading_lake import replay_hours, snapshot_window
from resources import Contract, LakeResource


@dg.asset(
    partitions_def=WINDOW_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[predictions, feed_records],
    kinds={"polars", "parquet"},
    group_name="pipeline",
)
def trading_replay(context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract) -> dg.MaterializeResult:
    """Per hour: `trading_pnl` (one row per model per event time), `trading_fills` (one row per
    order) and `trading_state` (one row: the books at the hour's end), replayed from the hour
    before's state; an hour before it not yet replayed is replayed first."""
    if contract.trading is None:
        raise dg.Failure("trading_replay needs a trading contract (contract.trading)", allow_retries=False)
    store = lake.get(contract)
    window = context.partition_time_window
    first = context.assets_def.partitions_def.get_first_partition_key()
    totals = replay_hours(store, contract, window.start, window.end, dt.datetime.strptime(first, WINDOW_KEY_FORMAT).replace(tzinfo=dt.UTC))
    store.ensure_catalog()
    return dg.MaterializeResult(metadata={"dagster/row_count": totals["pnl_rows"], "hours_replayed": totals["hours"], "orders": totals["fills"]})


@dg.asset(
    name="snapshots",
    partitions_def=WINDOW_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[trading_replay],
    kinds={"polars", "parquet"},
    group_name="pipeline",
)
def trading_snapshots(context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract) -> dg.MaterializeResult:
    """One row per model per hour (grain: model_id × period_start): its standing at the hour's
    end: value = net PnL; result_summary: net, unrealized and realized PnL, fees, carry, open
    positions, exposure, max drawdown, closing fills, hit rate and Sortino since its first order."""
    store = lake.get(contract)
    window = context.partition_time_window
    keys = window_keys_between(window.start, window.end)
    out = snapshot_window(store, contract, window.start, window.end)
    store.ensure_catalog()
    latest = out.sort("period_start").group_by("model_id", maintain_order=True).last().sort("value", descending=True)
    return dg.MaterializeResult(
        metadata=table_metadata(out, partitions=len(keys), by_model=dg.MetadataValue.md(markdown_table(latest.select("model_id", "period_start", "value"), limit=50)))
    )


# The trading build's window assets, in place of `assets.window_assets`.
trading_window_assets = [feed_records, inputs, predictions, trading_replay, trading_snapshots]

"""The trading pack's assets: `trading_replay` (predictions and the feed replayed hour by hour
into simulated portfolios) and its `snapshots` (each model's standing at every hour's end), plus
the lake reads the leaderboard and checkpoints use to rank a trading contract by net PnL.

A trading build (`contract.trading` set) uses these in place of `scores` and the scored
`snapshots`; the portfolios are never a stored, mutable table: every hour's state is the replay
of the predictions and the feed from the hour before's state.
"""


import datetime as dt
from typing import Any

import dagster as dg
import polars as pl

from assets.feeds import feed_records
from assets.inputs import inputs
from assets.metadata import markdown_table, table_metadata
from assets.predictions import predictions
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.lake.layout import window_start_of_file
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT, WINDOW_PARTITIONS, window_key, window_keys_between
from coordinator_dagster.scoring.trading import hourly, standings
from resources import Contract, LakeResource

HOUR = dt.timedelta(hours=1)


def saved_state(store: Lake, contract: CrunchContract, hour: dt.datetime) -> hourly.HourState | None:
    """The state at the end of `hour`, if that hour has been replayed."""
    frame = store.read("trading_state", window_key(hour))
    return hourly.load(frame["state"][0], contract.trading) if frame.height else None


def _saved_hours(store: Lake) -> list[dt.datetime]:
    return [h for h in (window_start_of_file(p) for p in store.files("trading_state")) if h is not None]


def state_before(store: Lake, contract: CrunchContract, moment: dt.datetime) -> hourly.HourState | None:
    """The state of the newest replayed hour that ended by `moment` (None: none had)."""
    ended = [h for h in _saved_hours(store) if h + HOUR <= moment]
    return saved_state(store, contract, max(ended)) if ended else None


def resume_point(store: Lake, contract: CrunchContract, start: dt.datetime, first_hour: dt.datetime) -> tuple[hourly.HourState, dt.datetime]:
    """Where a replay reaching `start` begins: after the newest replayed hour before `start`
    (from its state), or at `first_hour` from nothing. Hours in between are replayed too, so
    runs may arrive in any order and each still starts from the state before it."""
    saved = [h for h in _saved_hours(store) if first_hour <= h < start]
    if saved:
        newest = max(saved)
        state = saved_state(store, contract, newest)
        if state is not None:
            return state, newest + HOUR
    return hourly.HourState(), first_hour


def replay_hours(store: Lake, contract: CrunchContract, start: dt.datetime, end: dt.datetime, first_hour: dt.datetime) -> dict[str, Any]:
    """Replay every hour from the resume point to `end`, writing each hour's PnL, fills and state."""
    state, hour = resume_point(store, contract, start, first_hour)
    totals = {"hours": 0, "pnl_rows": 0, "fills": 0}
    while hour < end:
        key = window_key(hour)
        orders = store.read_window("predictions", hour, hour + HOUR)
        prices = hourly.prices_closing_in(store.read_window("feed_records", hour - HOUR, hour + HOUR), hour, hour + HOUR)
        result, state = hourly.replay_hour(orders, prices, contract.trading, state)
        store.write("trading_pnl", result.pnl, key)
        store.write("trading_fills", result.fills, key)
        row = {"period_start": [hour], "as_of": [state.replay.as_of], "state": [hourly.dump(state)]}
        store.write("trading_state", pl.DataFrame(row), key)
        totals = {"hours": totals["hours"] + 1, "pnl_rows": totals["pnl_rows"] + result.pnl.height, "fills": totals["fills"] + result.fills.height}
        hour += HOUR
    return totals


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
    frames = []
    for key in keys:
        hour = dt.datetime.strptime(key, WINDOW_KEY_FORMAT).replace(tzinfo=dt.UTC)
        state = saved_state(store, contract, hour)
        if state is not None:
            orders = store.read_window("predictions", hour, hour + HOUR)
            frames.append(hourly.snapshot_rows(state, orders, store.read("trading_fills", key), hour, contract.scoring_version))
    out = pl.concat(frames) if frames else store.read_paths("snapshots", [])
    store.write_windows("snapshots", out, "period_start", keys)
    store.ensure_catalog()
    latest = out.sort("period_start").group_by("model_id", maintain_order=True).last().sort("value", descending=True)
    return dg.MaterializeResult(
        metadata=table_metadata(out, partitions=len(keys), by_model=dg.MetadataValue.md(markdown_table(latest.select("model_id", "period_start", "value"), limit=50)))
    )


def trading_leaderboard(store: Lake, contract: CrunchContract, models: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """The leaderboard by net PnL at the newest replayed hour (standings.leaderboard)."""
    newest = store.newest_window("trading_state")
    state = saved_state(store, contract, newest) if newest is not None else None
    windows = contract.aggregation.windows
    if state is None:
        return standings.leaderboard(hourly.HourState(), {name: None for name in windows}, models, now)
    starts = {name: state_before(store, contract, newest + HOUR - hours * HOUR) for name, hours in windows.items()}
    return standings.leaderboard(state, starts, models, min(newest + HOUR, now))


def trading_checkpoint_entries(store: Lake, contract: CrunchContract, models: pl.DataFrame, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """A period's entries ranked by the net PnL made in it (standings.checkpoint_entries)."""
    return standings.checkpoint_entries(state_before(store, contract, start), state_before(store, contract, end), models)


# The trading build's window assets, in place of `assets.window_assets`.
trading_window_assets = [feed_records, inputs, predictions, trading_replay, trading_snapshots]

"""`leaderboard`: the current ranking over the contract's rolling windows."""

import datetime as dt

import dagster as dg

from assets.metadata import leaderboard_metadata
from assets.snapshots import snapshots
from assets.trading import trading_leaderboard
from coordinator_dagster.scoring import ranking
from coordinator_dagster.partitions import window_key
from resources import ClockResource, Contract, LakeResource


@dg.asset(deps=[snapshots], kinds={"polars", "parquet"}, group_name="pipeline")
def leaderboard(
    context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract, clock: ClockResource
) -> dg.MaterializeResult:
    """One row per model (grain: model_id), ranked by the contract's ranking key (a trading
    contract: by net PnL, see `assets.trading`); ensembles are listed unranked. Each build is also kept in `leaderboard_history` under its as_of hour, so a
    model's standing over time stays queryable.

    Windows end at the newest snapshot, so only the last `max(window)` hours are read; the
    same snapshots always give the same ranking (ties: see `coordinator_dagster.scoring.ranking`).
    """
    store = lake.get(contract)
    newest_start = store.newest_window("snapshots")
    if newest_start is not None:
        longest = dt.timedelta(hours=max(contract.aggregation.windows.values()))
        recent = store.read_window("snapshots", newest_start + dt.timedelta(hours=1) - longest, newest_start + dt.timedelta(hours=1))
    else:
        recent = store.read_paths("snapshots", [])
    if contract.trading is not None:
        board = trading_leaderboard(store, contract, store.read("models"), clock.now())
    else:
        board = ranking.leaderboard(contract, recent, store.read("models"), clock.now())
    store.write("leaderboard", board)
    if board.height:
        as_of = board["as_of"][0]
        # An as_of on the hour closes the previous hour's ranking; keep it in that hour.
        key = window_key(as_of - dt.timedelta(microseconds=1))
        store.write("leaderboard_history", board, key)
    store.ensure_catalog()
    return dg.MaterializeResult(metadata=leaderboard_metadata(board, list(contract.aggregation.windows)))

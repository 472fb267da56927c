"""`leaderboard`: the current ranking over the contract's rolling windows."""

import dagster as dg

from assets.metadata import leaderboard_metadata
from assets.snapshots import snapshots
from coordinator_dagster.trading_lake import trading_leaderboard
from coordinator_dagster.scoring_batches import build_leaderboard, write_leaderboard
from resources import ClockResource, Contract, LakeResource


@dg.asset(deps=[snapshots], kinds={"polars", "parquet"}, group_name="pipeline")
def leaderboard(
    context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract, clock: ClockResource
) -> dg.MaterializeResult:
    """One row per model (grain: model_id), ranked by the contract's ranking key (a trading
    contract: by net PnL, see `coordinator_dagster.trading_lake`); ensembles are listed unranked. Each build is also kept in `leaderboard_history` under its as_of hour, so a
    model's standing over time stays queryable.

    Windows end at the newest snapshot, so only the last `max(window)` hours are read; the
    same snapshots always give the same ranking (ties: see `coordinator_dagster.scoring.ranking`).
    """
    store = lake.get(contract)
    if contract.trading is not None:
        board = trading_leaderboard(store, contract, store.read("models"), clock.now())
        write_leaderboard(store, board)
    else:
        board = build_leaderboard(store, contract, clock.now())
    store.ensure_catalog()
    return dg.MaterializeResult(metadata=leaderboard_metadata(board, list(contract.aggregation.windows)))

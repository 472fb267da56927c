"""`group_leaderboard`: leaderboards per horizon and per asset × horizon, with the contract's
windows (where their round scores come from: `coordinator_dagster.group_lake`)."""

import datetime as dt

import dagster as dg

from assets.scores import scores
from coordinator_dagster.group_lake import ranking_window, read_round_scores, round_source
from coordinator_dagster.scoring import group_ranking
from resources import ClockResource, Contract, LakeResource


def build_group_leaderboard_asset(source: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """The asset over its round scores' asset: `scores`, or `density_round_scores` (assets.density)
    for a contract with prediction profiles, so the graph shows where its rounds come from."""
    return dg.asset(name="group_leaderboard", deps=[source], kinds={"polars", "parquet"}, group_name="pipeline")(_group_leaderboard)


def _group_leaderboard(
    context: dg.AssetExecutionContext, lake: LakeResource, contract: Contract, clock: ClockResource
) -> dg.MaterializeResult:
    """One row per model per group (grain: group_kind, group_key, model_id): the overall ranking,
    one per horizon and one per asset × horizon, each with the contract's windows and ranked by the
    ranking window. The API serves it as `ranks_by_horizon` / `ranks_by_param`.
    """
    store = lake.get(contract)
    windows = contract.aggregation.windows
    now = clock.now()
    # Windows end at the newest scored hour, not the wall clock: a replayed history ranks the same.
    newest = store.newest_window(round_source(contract))
    end = newest + dt.timedelta(hours=1) if newest is not None else now
    rounds = read_round_scores(store, contract, end - dt.timedelta(hours=max(windows.values())), end)
    board = group_ranking.group_leaderboard(
        rounds, windows, ranking_window(contract), contract.aggregation.ranking_direction, now=now
    )
    store.write("group_leaderboard", board)
    store.ensure_catalog()
    names = list(windows)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": board.height,
            "rounds_read": rounds.height,
            "round_source": round_source(contract),
            "as_of": str(board["as_of"][0]) if board.height else "no scored rounds yet",
            "ranking_window": ranking_window(contract),
            "by_horizon": dg.MetadataValue.md(group_ranking.markdown_group_tables(board, names, group_ranking.HORIZON)),
            "by_asset_and_horizon": dg.MetadataValue.md(group_ranking.markdown_group_tables(board, names, group_ranking.PARAM, limit=3)),
            "overall": dg.MetadataValue.md(group_ranking.markdown_group_tables(board, names, group_ranking.OVERALL)),
        }
    )


group_leaderboard = build_group_leaderboard_asset(scores)

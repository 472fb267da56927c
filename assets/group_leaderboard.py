"""`group_leaderboard`: leaderboards per horizon and per asset × horizon, with the contract's
windows, and where their round scores come from."""

import datetime as dt

import dagster as dg
import polars as pl

from assets.scores import scores
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.scoring import group_ranking
from resources import ClockResource, Contract, LakeResource

# Density competitions (a contract with prediction profiles) write one normalised score per model
# per round here (Synth rules); other contracts' leaderboards by group are built from their scores.
DENSITY_TABLE = "density_round_scores"
# A round is read from its round time's hour; its score counts once resolved, up to this long later.
LONGEST_HORIZON = dt.timedelta(days=2)


def ranking_window(contract: CrunchContract) -> str:
    """The window that orders each group: the ranking key when it is a window, else the longest."""
    windows = contract.aggregation.windows
    key = contract.aggregation.ranking_key
    return key if key in windows else max(windows, key=windows.__getitem__)


def round_source(contract: CrunchContract) -> str:
    """Where the contract's round scores are: every lake has both tables, so the contract decides."""
    return DENSITY_TABLE if contract.prediction_profiles else "scores"


def read_round_scores(store: Lake, contract: CrunchContract, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Round scores (model_id, subject, horizon_seconds, performed_at, score, …) of the rounds
    performed in [start − LONGEST_HORIZON, end)."""
    first = start - LONGEST_HORIZON
    if round_source(contract) == DENSITY_TABLE:
        return store.read_window(DENSITY_TABLE, first, end)
    horizons = {p.scope_key: p.resolve_horizon_seconds for p in contract.scheduled_predictions}
    return group_ranking.rounds_from_scores(store.read_window("scores", first, end), horizons)


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

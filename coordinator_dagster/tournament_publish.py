"""A tournament's leaderboard and round checkpoints in the node's own `leaderboard`,
`checkpoints` and `checkpoint_events` tables, where the shared report routes
(`/reports/leaderboard`, `/reports/checkpoints`, their emission, prizes and payload pages) and
the dashboard read them on any node.

Why copies in the node's tables rather than teaching every shared route to also read
`lake/tournament/`: those routes are served from the reader's in-memory tables, their prebuilt
answers and a response cache, all invalidated by the node tables' files; a route reading other
files would serve stale answers from all three. The copies are derived rows (rewritten whenever
the round's leaderboard or checkpoint is rebuilt), so they never disagree with the round tables
for long. A checkpoint's status is a fact, not a derived row, so it has one history readable from
both sides: a status change of a round checkpoint is appended to the node's `checkpoint_events`
(the shared views derive the status from it), and the round's own status is the newest event of
either lake (so a change made through the shared `/reports/checkpoints/{id}/status` route also
locks the round's truth).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.scoring_batches import write_leaderboard
from coordinator_dagster.tournament_lake import RoundLake
from coordinator_dagster.windows import PERIOD_KEY_FORMAT

# A round checkpoint ranks the round's mean score (`tournament_rounds.checkpoint`).
ROUND_RANKING_KEY = "value"


def node_lake(lake: RoundLake, contract: CrunchContract | None = None) -> Lake:
    """The node's lake in the round lake's home (the leaderboard's columns follow the contract's
    windows; the checkpoint tables do not depend on them)."""
    return Lake.for_contract(lake.home, contract) if contract is not None else Lake(lake.home)


def publish_leaderboard(lake: RoundLake, contract: CrunchContract, board: pl.DataFrame, as_of: dt.datetime | None) -> None:
    """The tournament's leaderboard (`tournament_rounds.leaderboard`) as the node's leaderboard:
    the same ranks, its ranking key's value, and every aggregation window; `as_of` is the newest
    round's scoring time."""
    node = node_lake(lake, contract)
    schema = node.table("leaderboard").schema
    if board.is_empty() or as_of is None:
        write_leaderboard(node, schema.to_frame())
        return
    aggregation = contract.aggregation
    key = aggregation.ranking_key if aggregation.ranking_key in board.columns else aggregation.value_field
    if key not in board.columns:  # the value field is stored as value_all when it names a window
        key = "value_all"
    rows = board.select(
        pl.col("rank"),
        pl.col("model_id"),
        pl.lit(None, pl.String).alias("model_name"),
        pl.lit(None, pl.String).alias("cruncher"),
        pl.lit(key).alias("ranking_key"),
        pl.col(key).cast(pl.Float64).alias("ranking_value"),
        pl.lit(False).alias("is_ensemble"),
        *[pl.col(name).cast(pl.Float64) if name in board.columns else pl.lit(None, pl.Float64).alias(name) for name in aggregation.windows],
        pl.col("prediction_count"),
        pl.lit(as_of).cast(schema["as_of"]).alias("as_of"),
    )
    write_leaderboard(node, rows)


def publish_checkpoint(lake: RoundLake, checkpoint: pl.DataFrame, snapshots: pl.DataFrame) -> None:
    """The round's checkpoint row (`tournament_rounds.checkpoint`) in the node's `checkpoints`,
    in the period partition of the day its features were recorded (several rounds of one day
    share that partition: the others' rows are kept), its period the round's."""
    if checkpoint.is_empty() or snapshots.is_empty():
        return
    node = node_lake(lake)
    row = checkpoint.row(0, named=True)
    start, end = snapshots["period_start"].min(), snapshots["period_end"].max()
    key = start.strftime(PERIOD_KEY_FORMAT)
    mine = pl.DataFrame(
        [
            {
                "checkpoint_id": row["checkpoint_id"],
                "period_start": start,
                "period_end": end,
                "status": row["status"],
                "ranking_key": ROUND_RANKING_KEY,
                "model_count": row["model_count"],
                "entries": row["entries"],
                "emission": row["emission"],
                "merkle_root": row["merkle_root"],
            }
        ],
        schema=node.table("checkpoints").schema,
    )
    with node.partition_lock("checkpoints", key):
        path = node.partition_path("checkpoints", key)
        others = pl.read_parquet(path).filter(pl.col("checkpoint_id") != row["checkpoint_id"]) if path.is_file() else mine.clear()
        node.write("checkpoints", pl.concat([others, mine], how="vertical"), key)


def node_checkpoint_events(lake: RoundLake, checkpoint_id: str) -> pl.DataFrame:
    """The node's status events of one checkpoint."""
    node = node_lake(lake)
    if not node.has_files("checkpoint_events"):
        return node.table("checkpoint_events").schema.to_frame()
    found = node.query("SELECT * FROM raw_checkpoint_events WHERE checkpoint_id = ?", [checkpoint_id])
    return found.select([pl.col(name).cast(dtype) for name, dtype in node.table("checkpoint_events").schema.items()])


def append_node_event(lake: RoundLake, event: pl.DataFrame) -> None:
    node_lake(lake).append_event("checkpoint_events", event)

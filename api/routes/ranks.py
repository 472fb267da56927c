"""Leaderboards per group and payout tables: `GET /reports/leaderboard/ranks` (every model with
its `ranks_by_horizon` and `ranks_by_param`, as CrunchDAO publishes its density competitions'
leaderboard) and `GET /reports/checkpoints/{id}/payouts` (a checkpoint's paid and retained
slots, with prizes in the pool's smallest unit when the checkpoint carries a pool amount).

Both read what the assets wrote (`group_leaderboard`, `checkpoint_payouts`); the nesting into the
published shape is `coordinator_dagster.scoring.group_ranking.published_entries`.
"""

from __future__ import annotations

from typing import Annotated

import polars as pl
from fastapi import APIRouter, HTTPException, Path
from pydantic import Field

from api import sql
from api.deps import DbDep
from api.schemas import ApiModel
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.scoring.group_ranking import published_entries

router = APIRouter(prefix="/reports/leaderboard", tags=["leaderboard"])
payouts_router = APIRouter(prefix="/reports/checkpoints", tags=["checkpoints"])

# The group leaderboard's fixed columns; every other one is an aggregation window.
_FIXED = {"group_kind", "group_key", "subject", "horizon_seconds", "rank", "model_id", "ranking_key", "ranking_value", "round_count", "as_of"}


class GroupRank(ApiModel):
    rank: int | None = Field(description="1 = best within the group; null without a value in the ranking window")
    score: dict[str, float | None] = Field(description="mean normalised score per window (recent, steady, anchor)")


class RankedModel(ApiModel):
    """One model as CrunchDAO's published leaderboard shows it."""

    rank: int | None = Field(description="overall rank (asset-weighted over every asset and horizon)")
    model_id: str
    model_name: str | None
    player_name: str | None = Field(description="the model's cruncher")
    cruncher_index: int | None
    score: dict[str, float | None]
    ranks_by_horizon: dict[str, GroupRank] = Field(description="by horizon in seconds, e.g. \"3600\"")
    ranks_by_param: dict[str, GroupRank] = Field(description="by asset and horizon, e.g. \"BTC:3600\"")


class PayoutLine(ApiModel):
    group_key: str = Field(description="the horizon (\"3600\") or asset × horizon (\"BTC:3600\"); empty for a rule without groups")
    slot: int | None = Field(description="1..K; null for a model left unpaid")
    status: str = Field(description="paid, retained (an unfilled slot, kept in the pool) or unpaid")
    model_id: str | None
    cruncher: str | None
    cruncher_index: int | None
    score: float | None
    reward_pct: int = Field(description="frac64 of the whole pool: 1,000,000,000 is 100 %")
    prize: int | None = Field(description="in the pool's smallest unit; null when the checkpoint has no pool amount")
    reason: str | None


class PayoutTable(ApiModel):
    checkpoint_id: str
    pool_amount: int | None = Field(description="the pool in its smallest unit, when the checkpoint carries one")
    pool_unit: str | None
    paid_pct: int
    retained_pct: int = Field(description="share left in the pool (unfilled slots); paid_pct + retained_pct = 1,000,000,000")
    paid_prize: int | None
    retained_prize: int | None
    lines: list[PayoutLine]


@router.get("/ranks", response_model=list[RankedModel], summary="Every model ranked overall, per horizon and per asset × horizon")
def get_ranks(db: DbDep) -> list[RankedModel]:
    board = sql.rows(db, "SELECT * FROM raw_group_leaderboard")
    if not board:
        return []
    frame = pl.DataFrame(board, infer_schema_length=None)
    windows = [c for c in frame.columns if c not in _FIXED and c not in ("date", "hour")]
    models = pl.DataFrame(
        sql.rows(db, "SELECT model_id, name, cruncher, cruncher_index FROM models"),
        schema={"model_id": pl.String, "name": pl.String, "cruncher": pl.String, "cruncher_index": pl.Int64},
    )
    return [RankedModel.model_validate(entry) for entry in published_entries(frame, windows, models)]


@payouts_router.get(
    "/{checkpoint_id}/payouts",
    response_model=PayoutTable,
    summary="A checkpoint's payout table: paid and retained slots, prizes in the pool's unit",
    responses={404: {"description": "no payout table for this checkpoint"}},
)
def get_payouts(db: DbDep, checkpoint_id: Annotated[str, Path(min_length=1, max_length=64)]) -> PayoutTable:
    lines = sql.rows(
        db,
        "SELECT * FROM raw_checkpoint_payouts WHERE checkpoint_id = ? "
        "ORDER BY group_key, slot NULLS LAST, status, model_id",
        [checkpoint_id],
    )
    if not lines:
        raise HTTPException(status_code=404, detail=f"no payout table for checkpoint {checkpoint_id!r}; GET /reports/checkpoints lists them")
    paid = [line for line in lines if line["status"] == "paid"]
    retained = [line for line in lines if line["status"] == "retained"]
    pool = lines[0]["pool_amount"]
    paid_pct = sum(line["reward_pct"] for line in paid)
    return PayoutTable(
        checkpoint_id=checkpoint_id,
        pool_amount=pool,
        pool_unit=lines[0]["pool_unit"],
        paid_pct=paid_pct,
        # An emission without groups lists its retained share as one line; one with groups, per slot.
        retained_pct=FRAC64_MULTIPLIER - paid_pct if paid or retained else 0,
        paid_prize=None if pool is None else sum(line["prize"] for line in paid),
        retained_prize=None if pool is None else pool - sum(line["prize"] for line in paid),
        lines=[PayoutLine(**{name: line[name] for name in PayoutLine.model_fields}) for line in lines],
    )

"""Checkpoints as the dashboard and the on-chain tooling read them: the list with `id`, `entries`
(the emission), `meta` and `submitted_at`; `/latest`; `/{id}/payload`; prizes in whole tokens
(`/{id}/prizes`, `/latest/prizes`; with CHECKPOINT_APPROVAL=required only for an approved emission,
else 409 with both hashes); rewards per model in percent; and the emission in the
submission tool's format (`/{id}/emission/cli-format`).

This router is mounted before `api.routes.checkpoints`, so `/latest` and `/latest/prizes` are
never taken for a checkpoint id. The project's own rewards (frac64) and CLI format are at
`/v1/reports/checkpoints/rewards` and `/v1/reports/checkpoints/{id}/emission/cli-format`.
The list is built once per change of the tables it reads (`api.prebuilt`), not per request.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, HTTPException, Query, Request, Response

from api import sql
from api.dashboard import shapes
from api.dashboard.schemas import (
    CheckpointMeta,
    CheckpointPayload,
    DashboardCheckpoint,
    DashboardReward,
    EmissionCli,
    LatestPrizes,
    Prize,
)
from api.checkpoint_gate import payable_gate
from api.deps import DbDep
from api.fast_lane import fast
from api.prebuilt import Answer, answer_of, encoder, render
from api.routes.checkpoints import CheckpointId
from api.schemas import CheckpointStatus, CheckpointSummary

router = APIRouter(prefix="/reports/checkpoints", tags=["checkpoints"])

_404 = {404: {"description": "no checkpoint with this id (or none yet, for latest)"}}
TotalPrize = Annotated[int, Query(ge=0, le=2**63 - 1, description="tokens to split (lowest denomination)")]
_ORDER = "ORDER BY period_start DESC, checkpoint_id DESC"


def _submitted_at(db: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    found = sql.rows(
        db,
        f"SELECT checkpoint_id, min(event_at) AS at FROM checkpoint_events WHERE status = 'SUBMITTED' "
        f"AND checkpoint_id IN ({', '.join('?' for _ in ids)}) GROUP BY checkpoint_id",
        ids,
    )
    return {r["checkpoint_id"]: r["at"] for r in found}


def _names(db: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    return {r["model_id"]: r["name"] for r in sql.rows(db, "SELECT model_id, name FROM models")}


def _dashboard(row: dict[str, Any], submitted: dict[str, Any], names: dict[str, str | None]) -> DashboardCheckpoint:
    entries = json.loads(row["entries"] or "[]")
    return DashboardCheckpoint(
        **{name: row[name] for name in CheckpointSummary.model_fields},
        id=row["checkpoint_id"],
        entries=[json.loads(row["emission"])],
        meta=CheckpointMeta(
            model_count=row["model_count"],
            snapshot_count=sum(int(e.get("snapshot_count") or 0) for e in entries),
            ranking=shapes.checkpoint_ranking(entries, names),
        ),
        created_at=row["period_end"],
        submitted_at=submitted.get(row["checkpoint_id"]),
    )


def _rows(db: duckdb.DuckDBPyConnection, where: sql.Where, limit: int | None = None) -> list[dict[str, Any]]:
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    return sql.rows(db, f"SELECT * FROM checkpoints{where.sql} {_ORDER}{tail}", where.params)


_encode = encoder(DashboardCheckpoint)


def _build_list(db: duckdb.DuckDBPyConnection, _: object) -> list[tuple[str, bytes]]:
    """Every checkpoint, newest period first: (status, its JSON) for the list to filter and cut."""
    found = _rows(db, sql.Where())
    submitted, names = _submitted_at(db, [r["checkpoint_id"] for r in found]), _names(db)
    return [(row["status"], render(_encode(_dashboard(row, submitted, names)))) for row in found]


CHECKPOINT_LIST = Answer("dashboard checkpoints", ("checkpoints", "checkpoint_events", "models"), _build_list)


DEFAULT_LIMIT = 100


async def _checkpoints(state: Any, status: CheckpointStatus | None = None, limit: int = DEFAULT_LIMIT) -> bytes:
    found = [body for found_status, body in await answer_of(state, CHECKPOINT_LIST) if status is None or found_status == status.value]
    return b"[" + b",".join(found[:limit]) + b"]"


@router.get("", response_model=list[DashboardCheckpoint], summary="Checkpoints, newest period first, with emission and ranking")
@fast(lambda state, _: _checkpoints(state))
async def list_checkpoints(
    request: Request,
    status: Annotated[CheckpointStatus | None, Query(description="only checkpoints in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_LIMIT,
) -> Response:
    return Response(await _checkpoints(request.app.state, status, limit), media_type="application/json")


def _one(db: duckdb.DuckDBPyConnection, checkpoint_id: str | None) -> dict[str, Any]:
    where = sql.Where() if checkpoint_id is None else sql.Where().equals("checkpoint_id", checkpoint_id)
    found = _rows(db, where, 1)
    if not found:
        detail = "no checkpoint has been built yet" if checkpoint_id is None else f"no checkpoint {checkpoint_id!r}; GET /reports/checkpoints lists them"
        raise HTTPException(status_code=404, detail=detail)
    return found[0]


@router.get("/latest", response_model=DashboardCheckpoint, summary="The newest checkpoint", responses=_404)
def latest_checkpoint(db: DbDep) -> DashboardCheckpoint:
    row = _one(db, None)
    return _dashboard(row, _submitted_at(db, [row["checkpoint_id"]]), _names(db))


def _prizes(request: Request, db: duckdb.DuckDBPyConnection, row: dict[str, Any], total: int) -> list[Prize]:
    approvals = sql.rows(db, "SELECT * FROM checkpoint_approvals WHERE checkpoint_id = ? ORDER BY event_at", [row["checkpoint_id"]])
    payable_gate(request, row, approvals)
    found = shapes.prizes(row["checkpoint_id"], row["period_end"], json.loads(row["emission"]), json.loads(row["entries"] or "[]"), total)
    return [Prize(**p) for p in found]


_PRIZE_RESPONSES = {**_404, 409: {"description": "CHECKPOINT_APPROVAL=required and the current emission is not approved (both hashes in the detail)"}}


@router.get("/latest/prizes", response_model=LatestPrizes, summary="The newest checkpoint's prizes in whole tokens", responses=_PRIZE_RESPONSES)
def latest_prizes(request: Request, db: DbDep, total_prize: TotalPrize = 0) -> LatestPrizes:
    row = _one(db, None)
    return LatestPrizes(
        checkpoint_id=row["checkpoint_id"], status=row["status"], period_start=row["period_start"], period_end=row["period_end"],
        total_prize=total_prize, prizes=_prizes(request, db, row, total_prize),
    )


@router.get("/rewards", response_model=list[DashboardReward], summary="Each model's reward per checkpoint in percent, oldest first")
def rewards(
    db: DbDep,
    model_id: Annotated[str | None, Query(max_length=200, description="only this model's rewards")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="newest checkpoints to cover")] = 20,
) -> list[DashboardReward]:
    out, names = [], _names(db)
    for row in _rows(db, sql.Where(), limit):
        entries = {e.get("cruncher_index"): e for e in json.loads(row["entries"] or "[]")}
        for reward in json.loads(row["emission"]).get("cruncher_rewards", []):
            entry = entries.get(reward["cruncher_index"], {})
            if model_id is not None and entry.get("model_id") != model_id:
                continue
            out.append(
                DashboardReward(
                    checkpoint_id=row["checkpoint_id"], period_start=shapes.chart_time(row["period_start"]),
                    period_end=shapes.chart_time(row["period_end"]), status=row["status"], model_id=entry.get("model_id"),
                    model_name=entry.get("name") or names.get(entry.get("model_id")), cruncher=entry.get("cruncher"), cruncher_index=reward["cruncher_index"],
                    rank=entry.get("rank"), prediction_count=entry.get("prediction_count"),
                    reward_pct=shapes.percent(reward["reward_pct"]), reward_frac64=reward["reward_pct"],
                )
            )
    return sorted(out, key=lambda r: (r.period_end, r.rank is None, r.rank or 0, r.cruncher_index))


@router.get("/{checkpoint_id}/payload", response_model=CheckpointPayload, summary="A checkpoint's period and emission", responses=_404)
def payload(db: DbDep, checkpoint_id: CheckpointId) -> CheckpointPayload:
    row = _one(db, checkpoint_id)
    return CheckpointPayload(
        checkpoint_id=row["checkpoint_id"], period_start=row["period_start"], period_end=row["period_end"], entries=[json.loads(row["emission"])]
    )


@router.get("/{checkpoint_id}/prizes", response_model=list[Prize], summary="A checkpoint's prizes in whole tokens", responses=_PRIZE_RESPONSES)
def checkpoint_prizes(request: Request, db: DbDep, checkpoint_id: CheckpointId, total_prize: TotalPrize = 0) -> list[Prize]:
    return _prizes(request, db, _one(db, checkpoint_id), total_prize)


@router.get(
    "/{checkpoint_id}/emission/cli-format",
    response_model=EmissionCli,
    summary="A checkpoint's emission as the on-chain submission tool reads it (percent by model id)",
    responses=_404,
)
def emission_cli(db: DbDep, checkpoint_id: CheckpointId) -> EmissionCli:
    row = _one(db, checkpoint_id)
    return EmissionCli(**shapes.cli_format(json.loads(row["emission"]), json.loads(row["entries"] or "[]")))

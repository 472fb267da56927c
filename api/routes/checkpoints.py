"""Checkpoints: the list, one checkpoint with its event history, its emission (stored and in the
on-chain tool's format), rewards per cruncher, and the lifecycle writes.

A checkpoint's status is derived by the lake view from its newest event; the emission is the
EmissionCheckpoint stored when the checkpoint was built (frac64 shares, each list summing to
1,000,000,000). The writes (`confirm`, `status`) never modify a stored row: the lifecycle rules
(`coordinator_dagster.checkpoint_lifecycle`) decide each change, and an accepted one appends one
`checkpoint_events` row with its time and caller, under the lake's partition lock of that
checkpoint, so two concurrent confirms cannot both append. The emissions are built once per
change of the checkpoint tables (`api.prebuilt`), not per request.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from api import sql
from api.auth import AdminCaller, IsAdmin, public_caller
from api.checkpoint_gate import confirm_gate
from api.deps import DbDep, LakeDep, NoExtraQuery, get_db_cursor
from api.fast_lane import fast
from api.prebuilt import Answer, answer_of, encoder, render
from api.schemas import (
    CheckpointDetail,
    CheckpointEvent,
    CheckpointReward,
    CheckpointStatus,
    CheckpointSummary,
    CliReward,
    ConfirmRequest,
    Emission,
    EmissionCliFormat,
    StatusRequest,
)
from api.solana import signature_error
from coordinator_dagster.checkpoint_lifecycle import Change, Conflict, UnknownStatus, confirmation, event_row, event_time, status_change
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER

router = APIRouter(prefix="/reports/checkpoints", tags=["checkpoints"])
emissions_router = APIRouter(prefix="/reports/emissions", tags=["checkpoints"])
# The project's own shapes where the dashboard's differ (api.routes.dashboard_checkpoints serves
# those on the unversioned paths).
v1_router = APIRouter(prefix="/v1/reports/checkpoints", tags=["checkpoints"])

_COLUMNS = ", ".join(f'"{name}"' for name in CheckpointSummary.model_fields)
# Printable characters only: a NUL or a control character is a 422, never a query or a file name.
CHECKPOINT_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
CheckpointId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=CHECKPOINT_ID_PATTERN, description="CKP-<period start>, e.g. CKP-2026-11-15")
]
_404 = {404: {"description": "no checkpoint with this id"}}


def _not_found(checkpoint_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no checkpoint {checkpoint_id!r}; GET /reports/checkpoints lists them")


@v1_router.get("", response_model=list[CheckpointSummary], summary="Checkpoints, newest period first")
def list_checkpoints(
    db: DbDep,
    status: Annotated[CheckpointStatus | None, Query(description="only checkpoints in this status")] = None,
) -> list[CheckpointSummary]:
    where = sql.Where().equals("status", status.value if status else None)
    found = sql.rows(
        db, f"SELECT {_COLUMNS} FROM checkpoints{where.sql} ORDER BY period_start DESC, checkpoint_id DESC", where.params
    )
    return [CheckpointSummary(**row) for row in found]


def _rewards(row: dict[str, Any]) -> list[CheckpointReward]:
    emission = json.loads(row["emission"])
    by_index = {e.get("cruncher_index"): e for e in json.loads(row["entries"] or "[]")}
    return [
        CheckpointReward(
            checkpoint_id=row["checkpoint_id"],
            period_start=row["period_start"],
            period_end=row["period_end"],
            status=row["status"],
            rank=by_index.get(r["cruncher_index"], {}).get("rank"),
            model_id=by_index.get(r["cruncher_index"], {}).get("model_id"),
            cruncher=by_index.get(r["cruncher_index"], {}).get("cruncher"),
            cruncher_index=r["cruncher_index"],
            reward_pct=r["reward_pct"],
        )
        for r in emission.get("cruncher_rewards", [])
    ]


@v1_router.get("/rewards", response_model=list[CheckpointReward], summary="Rewards per cruncher over checkpoints, newest first")
def list_rewards(
    db: DbDep,
    status: Annotated[CheckpointStatus | None, Query(description="only checkpoints in this status")] = None,
    model_id: Annotated[str | None, Query(max_length=200, description="only this model's rewards")] = None,
    cruncher_index: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="only this cruncher")] = None,
) -> list[CheckpointReward]:
    where = sql.Where().equals("status", status.value if status else None)
    found = sql.rows(
        db,
        f"SELECT checkpoint_id, period_start, period_end, status, entries, emission FROM checkpoints{where.sql} "
        "ORDER BY period_start DESC, checkpoint_id DESC",
        where.params,
    )
    rewards = [r for row in found for r in _rewards(row)]
    return [
        r
        for r in rewards
        if (model_id is None or r.model_id == model_id) and (cruncher_index is None or r.cruncher_index == cruncher_index)
    ]


def _checkpoint_row(db: duckdb.DuckDBPyConnection, checkpoint_id: str) -> dict[str, Any]:
    found = sql.rows(db, "SELECT * FROM checkpoints WHERE checkpoint_id = ? ORDER BY period_start DESC LIMIT 1", [checkpoint_id])
    if not found:
        raise _not_found(checkpoint_id)
    return found[0]


def _history(db: duckdb.DuckDBPyConnection, checkpoint_id: str, admin: bool) -> list[CheckpointEvent]:
    found = sql.rows(
        db,
        "SELECT event_at, status, tx_hash, caller FROM checkpoint_events WHERE checkpoint_id = ? ORDER BY event_at",
        [checkpoint_id],
    )
    # The caller's address is the operator's business: others see only how the call was made.
    return [CheckpointEvent(**{**row, "caller": row["caller"] if admin else public_caller(row["caller"])}) for row in found]


def _detail(db: duckdb.DuckDBPyConnection, checkpoint_id: str, admin: bool) -> CheckpointDetail:
    row = _checkpoint_row(db, checkpoint_id)
    return CheckpointDetail(
        **{name: row[name] for name in CheckpointSummary.model_fields},
        status_changed_at=row["status_changed_at"],
        entries=json.loads(row["entries"] or "[]"),
        history=_history(db, checkpoint_id, admin),
    )


@router.get("/{checkpoint_id}", response_model=CheckpointDetail, summary="One checkpoint with its status history", responses=_404)
def get_checkpoint(db: DbDep, checkpoint_id: CheckpointId, admin: IsAdmin) -> CheckpointDetail:
    return _detail(db, checkpoint_id, admin)


def _emission(db: duckdb.DuckDBPyConnection, checkpoint_id: str | None) -> Emission:
    if checkpoint_id is None:
        found = sql.rows(db, "SELECT checkpoint_id, status, emission FROM checkpoints ORDER BY period_start DESC, checkpoint_id DESC LIMIT 1")
        if not found:
            raise HTTPException(status_code=404, detail="no checkpoint has been built yet")
    else:
        found = sql.rows(
            db,
            "SELECT checkpoint_id, status, emission FROM checkpoints WHERE checkpoint_id = ? ORDER BY period_start DESC LIMIT 1",
            [checkpoint_id],
        )
        if not found:
            raise _not_found(checkpoint_id)
    return _emission_of(found[0])


def _emission_of(row: dict[str, Any]) -> Emission:
    return Emission.model_validate({**json.loads(row["emission"]), "checkpoint_id": row["checkpoint_id"], "status": row["status"]})


_encode_emission = encoder(Emission)


def _build_emissions(db: duckdb.DuckDBPyConnection, _: object) -> tuple[dict[str, bytes], bytes | None]:
    """(checkpoint id → its emission's JSON, the newest checkpoint's emission's JSON or None)."""
    found = sql.rows(db, "SELECT checkpoint_id, status, emission FROM checkpoints ORDER BY period_start DESC, checkpoint_id DESC")
    by_id: dict[str, bytes] = {}
    for row in found:  # newest period first: an id's first row is the one a query by id finds
        if row["checkpoint_id"] not in by_id:
            by_id[row["checkpoint_id"]] = render(_encode_emission(_emission_of(row)))
    return by_id, (by_id[found[0]["checkpoint_id"]] if found else None)


EMISSIONS = Answer("emissions", ("checkpoints", "checkpoint_events"), _build_emissions)


async def _stored_emission(state: Any, path: dict[str, str]) -> bytes | None:
    """A built checkpoint's emission (None for an id with none: FastAPI validates and answers)."""
    return (await answer_of(state, EMISSIONS))[0].get(path["checkpoint_id"])


async def _latest_emission(state: Any, _: dict[str, str]) -> bytes | None:
    return (await answer_of(state, EMISSIONS))[1]


@router.get("/{checkpoint_id}/emission", response_model=Emission, summary="A checkpoint's reward split", responses=_404)
@fast(_stored_emission)
async def get_emission(request: Request, checkpoint_id: CheckpointId) -> Response:
    found = await _stored_emission(request.app.state, {"checkpoint_id": checkpoint_id})
    if found is None:
        raise _not_found(checkpoint_id)
    return Response(found, media_type="application/json")


@v1_router.get(
    "/{checkpoint_id}/emission/cli-format",
    response_model=EmissionCliFormat,
    summary="A checkpoint's reward split as the on-chain submission tool takes it",
    responses=_404,
)
def get_emission_cli_format(db: DbDep, checkpoint_id: CheckpointId) -> EmissionCliFormat:
    emission = _emission(db, checkpoint_id)
    prizes = [
        CliReward(cruncher_index=r.cruncher_index, reward_pct=r.reward_pct, percent=100 * r.reward_pct / FRAC64_MULTIPLIER)
        for r in emission.cruncher_rewards
    ]
    return EmissionCliFormat(
        checkpoint_id=emission.checkpoint_id,
        status=emission.status,
        crunch=emission.crunch,
        prizes=prizes,
        compute_provider_rewards=emission.compute_provider_rewards,
        data_provider_rewards=emission.data_provider_rewards,
        total_reward_pct=sum(p.reward_pct for p in prizes),
    )


@emissions_router.get("/latest", response_model=Emission, summary="The newest checkpoint's reward split", responses={404: {"description": "no checkpoint yet"}})
@fast(_latest_emission)
async def get_latest_emission(request: Request) -> Response:
    found = await _latest_emission(request.app.state, {})
    if found is None:
        raise HTTPException(status_code=404, detail="no checkpoint has been built yet")
    return Response(found, media_type="application/json")


# ---- lifecycle writes -------------------------------------------------------------------------

_WRITE_RESPONSES = {
    401: {"description": "the admin API key is missing or wrong"},
    404: {"description": "no checkpoint with this id"},
    409: {"description": "the change conflicts with the checkpoint's current state"},
    413: {"description": "request body too large"},
}


def _record(lake, checkpoint_id: str, change: Change | None, caller: str, last_at: dt.datetime | None) -> None:
    if change is not None:
        at = event_time(dt.datetime.now(dt.timezone.utc), last_at)
        lake.append_event("checkpoint_events", event_row(checkpoint_id, change, caller, at))


def _known(request: Request, checkpoint_id: str) -> None:
    """404 for an id no checkpoint has, before the write takes a lock: a lock file is only ever
    named after a checkpoint that exists."""
    with get_db_cursor(request) as db:
        _checkpoint_row(db, checkpoint_id)


def _state(db: duckdb.DuckDBPyConnection, checkpoint_id: str) -> tuple[CheckpointStatus, str | None, dt.datetime | None]:
    """(status, transaction, time of the newest event), as the lake's checkpoints view derives them."""
    row = _checkpoint_row(db, checkpoint_id)
    return CheckpointStatus(row["status"]), row["tx_hash"], row["status_changed_at"]


@router.post(
    "/{checkpoint_id}/confirm",
    response_model=CheckpointDetail,
    summary="Record the on-chain transaction of a checkpoint: PENDING → SUBMITTED (admin)",
    responses=_WRITE_RESPONSES,
)
def confirm(
    request: Request, lake: LakeDep, caller: AdminCaller, _: NoExtraQuery, checkpoint_id: CheckpointId, body: ConfirmRequest
) -> CheckpointDetail:
    problem = signature_error(body.tx_hash)
    if problem:
        raise HTTPException(
            status_code=422,
            detail=[{"type": "value_error", "loc": ["body", "tx_hash"], "msg": f"tx_hash is not a Solana transaction signature: {problem}", "input": body.tx_hash}],
        )
    _known(request, checkpoint_id)
    with lake.partition_lock("checkpoint_events", checkpoint_id):
        with get_db_cursor(request) as db:
            status, tx_hash, last_at = _state(db, checkpoint_id)
        # With CHECKPOINT_APPROVAL=required: 409 unless the current emission is the approved one.
        confirm_gate(request, lake, checkpoint_id, status)
        try:
            change = confirmation(checkpoint_id, status, tx_hash, body.tx_hash)
        except Conflict as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        _record(lake, checkpoint_id, change, caller, last_at)
        # A fresh cursor: the first event of a lake turns the events view from a stub into files.
        with get_db_cursor(request) as db:
            return _detail(db, checkpoint_id, admin=True)


@router.patch(
    "/{checkpoint_id}/status",
    response_model=CheckpointDetail,
    summary="Move a checkpoint one step forward: PENDING → SUBMITTED → CLAIMABLE → PAID (admin)",
    responses=_WRITE_RESPONSES,
)
def set_status(
    request: Request, lake: LakeDep, caller: AdminCaller, _: NoExtraQuery, checkpoint_id: CheckpointId, body: StatusRequest
) -> CheckpointDetail:
    _known(request, checkpoint_id)
    with lake.partition_lock("checkpoint_events", checkpoint_id):
        with get_db_cursor(request) as db:
            status, tx_hash, last_at = _state(db, checkpoint_id)
        try:
            change = status_change(checkpoint_id, status, body.status, tx_hash)
        except UnknownStatus as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        except Conflict as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        _record(lake, checkpoint_id, change, caller, last_at)
        with get_db_cursor(request) as db:
            return _detail(db, checkpoint_id, admin=True)

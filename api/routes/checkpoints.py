"""`GET /reports/checkpoints` and `GET /reports/checkpoints/{checkpoint_id}/emission`.

A checkpoint's status is derived by the lake view from its newest event; the emission is the
EmissionCheckpoint stored when the checkpoint was built (frac64 shares, each list summing to
1,000,000,000).
"""

import json
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from api import sql
from api.deps import DbDep
from api.schemas import CheckpointStatus, CheckpointSummary, Emission

router = APIRouter(prefix="/reports/checkpoints", tags=["checkpoints"])

_COLUMNS = ", ".join(f'"{name}"' for name in CheckpointSummary.model_fields)


@router.get("", response_model=list[CheckpointSummary], summary="Checkpoints, newest period first")
def list_checkpoints(
    db: DbDep,
    status: Annotated[CheckpointStatus | None, Query(description="only checkpoints in this status")] = None,
) -> list[CheckpointSummary]:
    where = sql.Where().equals("status", status.value if status else None)
    found = sql.rows(
        db, f"SELECT {_COLUMNS} FROM checkpoints{where.sql} ORDER BY period_start DESC, checkpoint_id DESC", where.params
    )
    return [CheckpointSummary(**row) for row in found]


@router.get(
    "/{checkpoint_id}/emission",
    response_model=Emission,
    summary="A checkpoint's reward split",
    responses={404: {"description": "no checkpoint with this id"}},
)
def get_emission(
    db: DbDep,
    checkpoint_id: Annotated[str, Path(description="CKP-<period start>, e.g. CKP-2026-11-15")],
) -> Emission:
    found = sql.rows(
        db,
        "SELECT checkpoint_id, status, emission FROM checkpoints WHERE checkpoint_id = ? ORDER BY period_start DESC LIMIT 1",
        [checkpoint_id],
    )
    if not found:
        raise HTTPException(status_code=404, detail=f"no checkpoint {checkpoint_id!r}; GET /reports/checkpoints lists them")
    row = found[0]
    return Emission.model_validate({**json.loads(row["emission"]), "checkpoint_id": row["checkpoint_id"], "status": row["status"]})

"""`GET /reports/checkpoints/{id}/bundle`: the audit bundle of a checkpoint's current emission.

The zip the `audit_bundle` asset wrote (`coordinator_dagster.audit.bundle`), for anyone to check
offline with `coordinator audit verify`. Its tier is a setting (`AUDIT_BUNDLE_ACCESS`: public by
default, since the bundle holds what the public checkpoint routes already derive from; `admin`
for a node whose predictions are not public), applied where the app mounts this router.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from api.checkpoint_gate import current_row
from api.deps import LakeDep
from api.routes.checkpoints import CheckpointId
from coordinator_dagster.audit.bundle import current_bundle
from coordinator_dagster.checkpoint_review import emission_hash

router = APIRouter(prefix="/reports/checkpoints", tags=["checkpoints"])


@router.get(
    "/{checkpoint_id}/bundle",
    response_class=FileResponse,
    summary="The checkpoint's audit bundle (zip): verify it offline with `coordinator audit verify`",
    responses={
        200: {"content": {"application/zip": {}}, "description": "the bundle of the checkpoint's current emission"},
        404: {"description": "no checkpoint with this id, or no bundle of its current emission yet"},
    },
)
def checkpoint_bundle(lake: LakeDep, checkpoint_id: CheckpointId) -> FileResponse:
    digest = emission_hash(current_row(lake, checkpoint_id)["emission"])
    path = current_bundle(lake.home, checkpoint_id, digest)
    if path is None:
        raise HTTPException(
            status_code=404,
            detail=f"no audit bundle of {checkpoint_id}'s current emission ({digest}) yet: the audit_bundle asset writes it",
        )
    return FileResponse(path, media_type="application/zip", filename=f"{checkpoint_id}-{path.name}", headers={"X-Emission-Hash": digest})

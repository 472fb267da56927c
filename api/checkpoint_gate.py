"""The approval gate `confirm` passes before it records a transaction, and the pieces the review
routes share with it: the checkpoint row as the newest files hold it, the 409 that carries both
hashes, the CHECKPOINT_APPROVAL mode. A module of its own so that `api.routes.checkpoints` and
`api.routes.checkpoint_review` both use it without importing each other.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from fastapi import HTTPException, Request

from coordinator_dagster import checkpoint_review as review
from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.statuses import CheckpointStatus


def current_row(lake: Lake, checkpoint_id: str) -> dict[str, Any]:
    found = lake.query("SELECT checkpoint_id, period_start, status, entries, emission FROM checkpoints WHERE checkpoint_id = ?", [checkpoint_id])
    if not found.height:
        raise HTTPException(status_code=404, detail=f"no checkpoint {checkpoint_id!r}; GET /reports/checkpoints lists them")
    return found.row(0, named=True)


def mismatch(exc: review.HashMismatch) -> HTTPException:
    return HTTPException(status_code=409, detail={"message": str(exc), "approved_hash": exc.approved_hash, "current_hash": exc.current_hash})


def mode(request: Request) -> review.ApprovalMode:
    return request.app.state.settings.checkpoint_approval


def confirm_gate(request: Request, lake: Lake, checkpoint_id: str, status: CheckpointStatus) -> None:
    """409 with both hashes unless the checkpoint may be confirmed (call under the checkpoint's lock)."""
    row = current_row(lake, checkpoint_id)
    latest = review.latest_approval(review.approval_events(lake, checkpoint_id))
    try:
        review.confirm_gate(checkpoint_id, mode(request), status, review.emission_hash(row["emission"]), latest)
    except review.HashMismatch as exc:
        raise mismatch(exc) from None


def payable_gate(request: Request, row: dict[str, Any], approvals: list[dict[str, Any]]) -> None:
    """409 with both hashes when approval is required and the checkpoint's current emission is not
    the approved one: its prizes are not payable yet (the same rule as `confirm` and the prize
    file's export). `row`: the checkpoint as the routes read it; `approvals`: its approval events."""
    latest = review.latest_approval(pl.DataFrame(approvals, schema=schemas.CHECKPOINT_APPROVALS))
    try:
        review.confirm_gate(row["checkpoint_id"], mode(request), CheckpointStatus(row["status"]), review.emission_hash(row["emission"]), latest)
    except review.HashMismatch as exc:
        exc.args = (str(exc).replace("cannot be confirmed", "has no payable prizes"),)
        raise mismatch(exc) from None

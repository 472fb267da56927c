"""The review gate of checkpoints: a checkpoint's diff against the previous one, its approvals,
the explanation of one model's share (`explain_router`, read tier), and the approval itself
(admin); `confirm` calls the gate in `api.checkpoint_gate` before it records a transaction.

The rules are `coordinator_dagster.checkpoint_review`'s; these routes read the lake and append
`checkpoint_approvals` events under the same per-checkpoint lock as the lifecycle writes, so an
approval, a confirm and a rebuild of one checkpoint never interleave. The gate reads through fresh
lake connections (`Lake.query`), not the shared reader: a write must see the newest files.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from api.auth import AdminCaller, IsAdmin, public_caller
from api.checkpoint_gate import current_row, mismatch, mode
from api.deps import LakeDep, NoExtraQuery
from api.routes.checkpoints import CheckpointId
from api.schemas import StrictBody
from coordinator_dagster import checkpoint_review as review
from coordinator_dagster.checkpoint_explain import explain
from coordinator_dagster.checkpoint_lifecycle import Conflict
from coordinator_dagster.lake.store import Lake

router = APIRouter(prefix="/reports/checkpoints", tags=["checkpoints"])
# Explanations hand out snapshots and their proofs: the read tier, like /reports/merkle/proof.
explain_router = APIRouter(prefix="/reports/checkpoints", tags=["checkpoints"])


class CruncherDiff(BaseModel):
    cruncher_index: int
    cruncher: str | None
    model_id: str | None
    rank: int | None
    previous_rank: int | None
    reward_pct: int = Field(description="share now, frac64 (1,000,000,000 = 100 %)")
    previous_reward_pct: int
    share_change: int
    change: str = Field(description="new, gone, up, down, share (same rank, other share) or same")


class ApprovalEvent(BaseModel):
    event_at: dt.datetime
    action: str
    emission_hash: str
    reason: str | None
    caller: str | None


class CheckpointReview(BaseModel):
    checkpoint_id: str
    status: str
    emission_hash: str = Field(description="sha256 of the emission's canonical JSON: the hash to approve")
    approved_hash: str | None = Field(description="the hash currently approved; null if none or revoked")
    approval_required: bool
    previous_checkpoint_id: str | None
    diff: list[CruncherDiff]
    approvals: list[ApprovalEvent]


class ApproveRequest(StrictBody):
    emission_hash: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$", description="the reviewed emission's hash")


_404 = {404: {"description": "no checkpoint with this id"}}
_WRITE_RESPONSES = {
    401: {"description": "the admin API key is missing or wrong"},
    404: {"description": "no checkpoint with this id"},
    409: {"description": "not PENDING, or the hash is not the current emission's (both hashes in the detail)"},
}


def _review(request: Request, lake: Lake, checkpoint_id: str, admin: bool) -> CheckpointReview:
    row = current_row(lake, checkpoint_id)
    previous = review.previous_checkpoint(lake, row["period_start"])
    events = review.approval_events(lake, checkpoint_id)
    latest = review.latest_approval(events)
    return CheckpointReview(
        checkpoint_id=checkpoint_id,
        status=row["status"],
        emission_hash=review.emission_hash(row["emission"]),
        approved_hash=latest.approved_hash if latest else None,
        approval_required=mode(request) == "required",
        previous_checkpoint_id=previous["checkpoint_id"] if previous else None,
        diff=[CruncherDiff(**d) for d in review.checkpoint_diff(previous, row)],
        # The caller's address is the operator's business: others see only how the call was made.
        approvals=[
            ApprovalEvent(**{**e, "caller": e["caller"] if admin else public_caller(e["caller"])})
            for e in events.select(list(ApprovalEvent.model_fields)).iter_rows(named=True)
        ],
    )


@router.get(
    "/{checkpoint_id}/diff",
    response_model=CheckpointReview,
    summary="A checkpoint's emission hash, approvals and diff against the previous checkpoint",
    responses=_404,
)
def get_diff(request: Request, lake: LakeDep, checkpoint_id: CheckpointId, admin: IsAdmin) -> CheckpointReview:
    return _review(request, lake, checkpoint_id, admin)


@router.post(
    "/{checkpoint_id}/approve",
    response_model=CheckpointReview,
    summary="Approve a PENDING checkpoint's emission by its hash (admin)",
    responses=_WRITE_RESPONSES,
)
def approve(
    request: Request, lake: LakeDep, caller: AdminCaller, _: NoExtraQuery, checkpoint_id: CheckpointId, body: ApproveRequest
) -> CheckpointReview:
    current_row(lake, checkpoint_id)  # 404 before a lock file is named after an unknown id
    with lake.partition_lock("checkpoint_events", checkpoint_id):
        try:
            review.record_approval(lake, checkpoint_id, body.emission_hash, caller, dt.datetime.now(dt.timezone.utc))
        except review.HashMismatch as exc:
            raise mismatch(exc) from None
        except Conflict as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
    return _review(request, lake, checkpoint_id, admin=True)


class SnapshotExplanation(BaseModel):
    period_start: str
    prediction_count: int | None
    scored_count: int | None
    value: float | None
    proof: dict[str, Any] | None = Field(description="the snapshot's Merkle leaf and proof (verify with `coordinator verify-proof`)")


class Explanation(BaseModel):
    checkpoint_id: str
    model_id: str
    rank: int | None
    model_count: int
    cruncher_index: int | None
    reward_pct: int = Field(description="the cruncher's share, frac64")
    rule: str = Field(description="the emission rule that turned ranks into shares")
    ranking_key: str | None
    ranking_value: float | None
    recomputed_ranking_value: float | None = Field(description="re-derived from the snapshots below; null for per-group rules")
    reproducible: bool
    merkle_root: str | None
    snapshots: list[SnapshotExplanation]


@explain_router.get(
    "/{checkpoint_id}/explain",
    response_model=Explanation,
    summary="Why a model got its share: rank, rule, ranking value from its snapshots, their Merkle proofs",
    responses={404: {"description": "no such checkpoint, or the model is not ranked in it"}},
)
def get_explanation(
    request: Request,
    lake: LakeDep,
    checkpoint_id: CheckpointId,
    model_id: Annotated[str, Query(min_length=1, max_length=200, description="the model to explain")],
) -> Explanation:
    try:
        return Explanation(**explain(lake, request.app.state.contract, checkpoint_id, model_id))
    except KeyError as exc:
        raise HTTPException(status_code=404, detail=exc.args[0]) from None

"""`GET /reports/merkle/...`: a checkpoint's Merkle tree and per-snapshot proofs.

The tree is rebuilt from the lake's snapshots of the checkpoint's period and must reproduce the
root stored when the checkpoint was built; if it does not (the period was re-scored since), the
API refuses to hand out proofs against the stored root rather than serve proofs that fail.
A proof verifies offline: `coordinator verify-proof answer.json --root <merkle_root>`.
"""

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from api import sql
from api.deps import DbDep, IsoDateTime
from api.schemas import MerkleCycle, MerkleProofAnswer, MerkleTree
from coordinator_dagster.scoring.merkle import CheckpointTree, build_checkpoint_tree, proof_for

router = APIRouter(prefix="/reports/merkle", tags=["merkle"])
# Proofs hand out each snapshot's contents: the read tier, like /reports/snapshots.
proof_router = APIRouter(prefix="/reports/merkle", tags=["merkle"])

_NOT_FOUND = {404: {"description": "no such checkpoint or snapshot"}, 409: {"description": "snapshots changed since the checkpoint"}}


def _tree(db: DbDep, checkpoint_id: str) -> tuple[dict[str, Any], CheckpointTree]:
    found = sql.rows(db, "SELECT checkpoint_id, period_start, period_end, merkle_root FROM checkpoints WHERE checkpoint_id = ?", [checkpoint_id])
    if not found:
        raise HTTPException(status_code=404, detail=f"no checkpoint {checkpoint_id!r}; GET /reports/checkpoints lists them")
    checkpoint = found[0]
    if checkpoint["merkle_root"] is None:
        raise HTTPException(status_code=404, detail=f"checkpoint {checkpoint_id!r} has no Merkle root (no snapshots in its period)")
    snapshots = sql.rows(
        db,
        "SELECT model_id, period_start, period_end, prediction_count, result_summary FROM snapshots "
        "WHERE period_start >= ? AND period_start < ? AND date >= ? AND date <= ? ORDER BY period_start, model_id",
        [checkpoint["period_start"], checkpoint["period_end"], checkpoint["period_start"].date(), checkpoint["period_end"].date()],
    )
    tree = build_checkpoint_tree(snapshots)
    if tree.checkpoint_root != checkpoint["merkle_root"]:
        raise HTTPException(
            status_code=409,
            detail=f"the snapshots of {checkpoint_id} no longer reproduce its Merkle root {checkpoint['merkle_root']} "
            "(the period was re-scored after the checkpoint was built, or the root was stored under an earlier "
            "Merkle scheme, see docs/migrating.md); proofs would not verify",
        )
    return checkpoint, tree


@router.get("/checkpoints/{checkpoint_id}", response_model=MerkleTree, summary="A checkpoint's Merkle root and cycles", responses=_NOT_FOUND)
def get_tree(
    db: DbDep, checkpoint_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$", description="e.g. CKP-2026-11-15")]
) -> MerkleTree:
    checkpoint, tree = _tree(db, checkpoint_id)
    return MerkleTree(
        checkpoint_id=checkpoint_id,
        merkle_root=checkpoint["merkle_root"],
        cycles=[
            MerkleCycle(period_start=c.period_start, root=c.root, chained_root=c.chained_root, model_ids=list(c.model_ids))
            for c in tree.cycles
        ],
    )


@proof_router.get("/proof", response_model=MerkleProofAnswer, summary="Proof that one snapshot is in a checkpoint", responses=_NOT_FOUND)
def get_proof(
    db: DbDep,
    checkpoint_id: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$", description="e.g. CKP-2026-11-15")],
    model_id: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")],
    period_start: Annotated[IsoDateTime, Query(description="the snapshot's hour, ISO-8601 (UTC when no offset)")],
) -> MerkleProofAnswer:
    checkpoint, tree = _tree(db, checkpoint_id)
    if period_start.tzinfo is None:
        period_start = period_start.replace(tzinfo=dt.timezone.utc)
    try:
        proof = proof_for(tree, model_id, period_start)
    except (KeyError, ValueError):
        raise HTTPException(
            status_code=404, detail=f"no snapshot of {model_id!r} at {period_start.isoformat()} in {checkpoint_id}"
        ) from None
    return MerkleProofAnswer(checkpoint_id=checkpoint_id, merkle_root=checkpoint["merkle_root"], proof=proof)

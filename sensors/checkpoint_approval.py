"""`approve_checkpoint_job`: the Dagster UI's path to approve a checkpoint's emission.

Launched from the Launchpad with the checkpoint id and the emission hash the operator reviewed
(the `emission_hash` and `diff` of the `checkpoints` materialization). It appends the same
`checkpoint_approvals` event as `POST /reports/checkpoints/{id}/approve`, under the same lock, by
the same rules (`coordinator_dagster.checkpoint_review`); a hash that is not the current
emission's fails the run with both hashes.
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from coordinator_dagster import checkpoint_review as review
from coordinator_dagster.checkpoint_lifecycle import Conflict
from resources import Contract, LakeResource


class ApproveCheckpointConfig(dg.Config):
    checkpoint_id: str = Field(description="the checkpoint to approve, e.g. CKP-2026-11-15")
    emission_hash: str = Field(description="the emission_hash shown in the checkpoint's materialization, as reviewed")


@dg.op(description="Approve a PENDING checkpoint's emission by its hash.")
def approve_checkpoint(context: dg.OpExecutionContext, config: ApproveCheckpointConfig, lake: LakeResource, contract: Contract) -> None:
    store = lake.get(contract)
    with store.partition_lock("checkpoint_events", config.checkpoint_id):
        try:
            recorded = review.record_approval(
                store, config.checkpoint_id, config.emission_hash, f"dagster:run {context.run.run_id}", dt.datetime.now(dt.timezone.utc)
            )
        except Conflict as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
    context.log.info(f"{config.checkpoint_id}: {config.emission_hash} " + ("approved" if recorded else "was already approved"))


@dg.job(description="Approve a checkpoint's reviewed emission hash (Launchpad: checkpoint_id, emission_hash).")
def approve_checkpoint_job() -> None:
    approve_checkpoint()

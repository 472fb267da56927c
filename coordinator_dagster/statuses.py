"""The statuses rows of the lake carry, one `StrEnum` each; the API answers with the same values.

Stored as plain strings (each member is a `str`, so it goes into polars frames and SQL as is).
Where a status is derived rather than written (SCORED, RESOLVED, a checkpoint's current status),
the one rule that derives it is in `coordinator_dagster.lake.views`; the order a checkpoint moves
through is in `coordinator_dagster.checkpoint_lifecycle`.
"""

from __future__ import annotations

from enum import StrEnum


class PredictionStatus(StrEnum):
    PENDING = "PENDING"  # a valid answer, waiting for its truth
    SCORED = "SCORED"  # derived: a PENDING prediction that has a score row (never written)
    FAILED = "FAILED"  # the model raised or answered something invalid (with the reason)
    ABSENT = "ABSENT"  # no answer in time, or the round was missed (with the reason)
    # A valid answer to a live round the node asked after its cutoff (the contract's
    # `late_cutoff_seconds`): lateness = predicted_at - round_ts. Never scored into the ranking.
    LATE = "LATE"


class InputStatus(StrEnum):
    RECEIVED = "RECEIVED"
    RESOLVED = "RESOLVED"  # derived: the round's truth is known


class CheckpointStatus(StrEnum):
    PENDING = "PENDING"  # built; may be rebuilt
    SUBMITTED = "SUBMITTED"  # sent on-chain: immutable from here on
    CLAIMABLE = "CLAIMABLE"
    PAID = "PAID"

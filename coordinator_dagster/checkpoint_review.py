"""The review gate between building a checkpoint and submitting it: emission hashes, approvals,
the diff against the previous checkpoint, and the ledger of exported prize files.

An operator reviews a checkpoint's emission (its diff against the previous checkpoint, its asset
checks) and approves that emission by its hash: sha256 of the emission's canonical JSON (keys
sorted, no spaces). Approvals are appended `checkpoint_approvals` events, never updates: the
newest event of a checkpoint is its approval state. `confirm` then accepts only a checkpoint whose
approved hash equals the hash of the emission it holds now, so an emission that changed after
review (scores rebuilt, a late snapshot) cannot reach the chain unreviewed. A rebuild that changes
the emission appends a `revoked` event saying so; a rebuild that reproduces the same emission keeps
the approval (it approved that very hash).

Every prize file exported (`coordinator payout`) is an appended `checkpoint_exports` event; a
checkpoint that has been exported and has left PENDING (confirmed on-chain) is not exported again,
so the same rewards are not paid twice.

Plain functions: the API's routes, the `checkpoints` asset, the approval job and the CLI call them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from coordinator_dagster.checkpoint_lifecycle import Conflict, event_time, may_rebuild
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake import schemas
from coordinator_dagster.statuses import CheckpointStatus

ApprovalMode = Literal["required", "off"]
APPROVED = "approved"
REVOKED = "revoked"


def canonical_emission(emission: Mapping[str, Any]) -> str:
    """The emission's canonical JSON: keys sorted, no spaces (the form its hash is taken of)."""
    return json.dumps(emission, sort_keys=True, separators=(",", ":"))


def emission_hash(emission: Mapping[str, Any] | str) -> str:
    """sha256 hex of the canonical JSON; a stored JSON text is parsed first, so the hash does not
    depend on how the text was spaced."""
    if isinstance(emission, str):
        emission = json.loads(emission)
    return hashlib.sha256(canonical_emission(emission).encode()).hexdigest()


class HashMismatch(Conflict):
    """The approved hash is not the current emission's (the API answers 409 with both)."""

    def __init__(self, message: str, approved_hash: str | None, current_hash: str):
        super().__init__(message)
        self.approved_hash = approved_hash
        self.current_hash = current_hash


@dataclass(frozen=True)
class Approval:
    """The newest approval event of a checkpoint."""

    action: str  # approved | revoked
    emission_hash: str
    event_at: dt.datetime
    caller: str
    reason: str | None

    @property
    def approved_hash(self) -> str | None:
        return self.emission_hash if self.action == APPROVED else None


def latest_approval(events: pl.DataFrame) -> Approval | None:
    """The newest of a checkpoint's `checkpoint_approvals` rows; None if it has none."""
    if events.is_empty():
        return None
    row = events.sort("event_at").row(-1, named=True)
    return Approval(row["action"], row["emission_hash"], row["event_at"], row["caller"], row["reason"])


def approval_row(checkpoint_id: str, action: str, hash_: str, caller: str, at: dt.datetime, reason: str | None = None) -> pl.DataFrame:
    row = {"checkpoint_id": checkpoint_id, "event_at": at, "action": action, "emission_hash": hash_, "reason": reason, "caller": caller}
    return pl.DataFrame([row], schema=schemas.CHECKPOINT_APPROVALS)


def approval(checkpoint_id: str, status: CheckpointStatus | None, current_hash: str, requested_hash: str, latest: Approval | None) -> str | None:
    """Approve `requested_hash`: it must be the current emission's, and the checkpoint still
    PENDING. Returns the action to record, or None when this hash is already approved."""
    if not may_rebuild(status):
        raise Conflict(f"{checkpoint_id} is {status}: only a PENDING checkpoint is approved")
    if requested_hash != current_hash:
        raise HashMismatch(
            f"{checkpoint_id}: the emission reviewed ({requested_hash}) is not the current one ({current_hash}); "
            "review the current diff and approve its hash",
            requested_hash,
            current_hash,
        )
    if latest is not None and latest.approved_hash == current_hash:
        return None
    return APPROVED


def confirm_gate(checkpoint_id: str, mode: ApprovalMode, status: CheckpointStatus, current_hash: str, latest: Approval | None) -> None:
    """With approval required, a PENDING checkpoint is confirmed only if its current emission is
    the approved one. Off: the reference's behaviour (no approval). A checkpoint past PENDING is
    left to the lifecycle rules (confirming it again with its own transaction is idempotent)."""
    if mode == "off" or status != CheckpointStatus.PENDING:
        return
    approved = latest.approved_hash if latest else None
    if approved == current_hash:
        return
    why = (
        "it has not been approved" if latest is None
        else f"its approval was revoked ({latest.reason})" if approved is None
        else "the emission changed after it was approved"
    )
    raise HashMismatch(
        f"{checkpoint_id} cannot be confirmed: {why}; approved hash {approved}, current emission hash {current_hash}",
        approved,
        current_hash,
    )


def revocation_on_rebuild(latest: Approval | None, new_hash: str) -> str | None:
    """The reason to revoke an approval when a rebuild gives `new_hash`; None to keep it (no
    approval, already revoked, or the rebuild reproduced the approved emission)."""
    if latest is None or latest.approved_hash is None or latest.approved_hash == new_hash:
        return None
    return f"rebuilt: the emission changed from {latest.approved_hash} to {new_hash}"


# ---- reading the lake ----------------------------------------------------------------------------


def approval_events(lake: Any, checkpoint_id: str) -> pl.DataFrame:
    """A checkpoint's `checkpoint_approvals` rows, oldest first (`lake`: anything with `query`)."""
    return lake.query("SELECT * FROM checkpoint_approvals WHERE checkpoint_id = ? ORDER BY event_at", [checkpoint_id])


def export_events(lake: Any, checkpoint_id: str) -> pl.DataFrame:
    return lake.query("SELECT * FROM checkpoint_exports WHERE checkpoint_id = ? ORDER BY event_at", [checkpoint_id])


def previous_checkpoint(lake: Any, period_start: dt.datetime) -> dict[str, Any] | None:
    """The checkpoint of the newest period before `period_start` (the one a diff compares with)."""
    found = lake.query(
        "SELECT checkpoint_id, entries, emission FROM checkpoints WHERE period_start < ? ORDER BY period_start DESC LIMIT 1", [period_start]
    )
    return found.row(0, named=True) if found.height else None


def record_revocation_on_rebuild(lake: Any, checkpoint_id: str, new_hash: str, caller: str, now: dt.datetime) -> str | None:
    """Append the `revoked` event a rebuild calls for (see `revocation_on_rebuild`); its reason."""
    events = approval_events(lake, checkpoint_id)
    latest = latest_approval(events)
    reason = revocation_on_rebuild(latest, new_hash)
    if reason is not None:
        at = event_time(now, latest.event_at if latest else None)
        lake.append_event("checkpoint_approvals", approval_row(checkpoint_id, REVOKED, latest.emission_hash, caller, at, reason))
    return reason


def record_approval(lake: Any, checkpoint_id: str, requested_hash: str, caller: str, now: dt.datetime) -> bool:
    """Append the approval of `requested_hash` as `approval` decides (call under the checkpoint's
    lock); False if that hash was already approved. Raises `Conflict` / `HashMismatch`."""
    found = lake.query("SELECT status, emission FROM checkpoints WHERE checkpoint_id = ?", [checkpoint_id])
    if not found.height:
        raise Conflict(f"no checkpoint {checkpoint_id!r}")
    status, emission = found.row(0)
    latest = latest_approval(approval_events(lake, checkpoint_id))
    action = approval(checkpoint_id, CheckpointStatus(status), emission_hash(emission), requested_hash, latest)
    if action is None:
        return False
    at = event_time(now, latest.event_at if latest else None)
    lake.append_event("checkpoint_approvals", approval_row(checkpoint_id, action, requested_hash, caller, at))
    return True


# ---- diff against the previous checkpoint -------------------------------------------------------


def _per_cruncher(row: Mapping[str, Any] | None) -> dict[int, dict[str, Any]]:
    """cruncher_index → its share (frac64), best rank and best model in one checkpoint row."""
    if row is None:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for entry in json.loads(row["entries"] or "[]"):  # best first
        index = entry.get("cruncher_index")
        if index is None:
            continue
        here = out.setdefault(int(index), {"share": 0, "rank": entry.get("rank"), "model_id": entry.get("model_id"), "cruncher": entry.get("cruncher")})
        rank = entry.get("rank")
        if rank is not None and (here["rank"] is None or rank < here["rank"]):
            here.update(rank=rank, model_id=entry.get("model_id"))
    for reward in json.loads(row["emission"]).get("cruncher_rewards", []):
        index = int(reward["cruncher_index"])
        out.setdefault(index, {"share": 0, "rank": None, "model_id": None, "cruncher": None})["share"] += int(reward["reward_pct"])
    return out


def checkpoint_diff(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per cruncher of either checkpoint: share and rank now and before, and the change.

    `change` is "new" (absent before), "gone" (absent now), "up"/"down" (rank improved/worsened),
    "share" (same rank, other share) or "same". Sorted by the current rank, then cruncher index.
    """
    before, now = _per_cruncher(previous), _per_cruncher(current)
    rows = []
    for index in set(before) | set(now):
        b, n = before.get(index), now.get(index)
        share, prev_share = (n or {}).get("share", 0), (b or {}).get("share", 0)
        rank, prev_rank = (n or {}).get("rank"), (b or {}).get("rank")
        if b is None:
            change = "new"
        elif n is None:
            change = "gone"
        elif rank is not None and prev_rank is not None and rank != prev_rank:
            change = "up" if rank < prev_rank else "down"
        else:
            change = "share" if share != prev_share else "same"
        rows.append(
            {
                "cruncher_index": index,
                "cruncher": (n or b)["cruncher"],
                "model_id": (n or b)["model_id"],
                "rank": rank,
                "previous_rank": prev_rank,
                "reward_pct": share,
                "previous_reward_pct": prev_share,
                "share_change": share - prev_share,
                "change": change,
            }
        )
    return sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0, r["cruncher_index"]))


def diff_markdown(previous_id: str | None, rows: Sequence[Mapping[str, Any]]) -> str:
    """The diff for the Dagster UI: one line per cruncher, shares in percent."""
    if not rows:
        return "_no crunchers in this checkpoint or the previous one_"
    head = f"against **{previous_id}**" if previous_id else "_no previous checkpoint: every cruncher is new_"
    lines = [head, "", "| cruncher | model | rank | was | share % | was % | change % | change |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [
            str(r["cruncher"] or r["cruncher_index"]), str(r["model_id"] or ""),
            "" if r["rank"] is None else str(r["rank"]), "" if r["previous_rank"] is None else str(r["previous_rank"]),
            f"{100 * r['reward_pct'] / FRAC64_MULTIPLIER:.4f}", f"{100 * r['previous_reward_pct'] / FRAC64_MULTIPLIER:.4f}",
            f"{100 * r['share_change'] / FRAC64_MULTIPLIER:+.4f}", r["change"],
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


# ---- the export ledger --------------------------------------------------------------------------


def export_refusal(
    checkpoint_id: str, mode: ApprovalMode, status: CheckpointStatus, current_hash: str, latest: Approval | None, exports: pl.DataFrame
) -> str | None:
    """Why a prize file of this checkpoint must not be written (None: it may).

    Refused: an unapproved (or changed since approved) emission when approval is required, and a
    checkpoint already exported that has since left PENDING (its prizes went on-chain: a second
    file would pay them twice). A PENDING checkpoint may be exported again (e.g. a corrected pool).
    """
    if not exports.is_empty() and status != CheckpointStatus.PENDING:
        first = exports.sort("event_at").row(0, named=True)
        return (
            f"{checkpoint_id} was exported on {first['event_at']:%Y-%m-%d %H:%M:%S} UTC (pool {first['pool_amount']}) "
            f"and is {status}: its prizes are not exported twice"
        )
    try:
        confirm_gate(checkpoint_id, mode, CheckpointStatus.PENDING, current_hash, latest)
    except HashMismatch as exc:
        return str(exc).replace("cannot be confirmed", "cannot be exported")
    return None


def export_row(checkpoint_id: str, hash_: str, pool_amount: int, lines: int, file_sha256: str, caller: str, at: dt.datetime) -> pl.DataFrame:
    row = {
        "checkpoint_id": checkpoint_id, "event_at": at, "emission_hash": hash_, "pool_amount": pool_amount,
        "model_count": lines, "file_sha256": file_sha256, "caller": caller,
    }
    return pl.DataFrame([row], schema=schemas.CHECKPOINT_EXPORTS)

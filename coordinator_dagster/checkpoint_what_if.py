"""What-if: the last checkpoints' emissions recomputed under a candidate emission rule, compared
with the stored ones, without writing anything to the lake.

Each stored checkpoint keeps its ranked entries; the candidate rule (`build_emission`, a
`module:function` validated as the contract validates its own) is applied to them and the result
compared per cruncher with the stored emission by the review's diff
(`checkpoint_review.checkpoint_diff`): old vs new share and rank. With the contract's own rule the
emissions are reproduced exactly (same emission hash). Candidate scoring functions are out of
scope here: they need the period re-scored, not only re-split.
"""

from __future__ import annotations

import json
from typing import Any

from coordinator_dagster import checkpoint_review as review
from coordinator_dagster.scoring.top_k_rewards import TopKPerGroup


def candidate_contract(contract: Any, build_emission: str | None) -> Any:
    """The contract with `build_emission` replaced (validated like the contract's own field)."""
    if not build_emission:
        return contract
    return type(contract)(**{**dict(contract), "build_emission": build_emission})


def _emission(contract: Any, entries: list[dict[str, Any]]) -> dict[str, Any]:
    rule = contract.build_emission
    addresses = (contract.crunch_pubkey, contract.compute_provider, contract.data_provider)
    # The production rule decides slots per group; its emission is part of that decision.
    emission = rule.payouts(entries, *addresses).emission if isinstance(rule, TopKPerGroup) else rule(entries, *addresses)
    return emission.model_dump(mode="json")


def what_if(lake: Any, contract: Any, checkpoints: int) -> list[dict[str, Any]]:
    """Per checkpoint (newest first): whether the candidate reproduces it, and the per-cruncher diff."""
    rows = lake.query(
        "SELECT checkpoint_id, entries, emission FROM checkpoints ORDER BY period_start DESC, checkpoint_id DESC LIMIT ?", [checkpoints]
    )
    out = []
    for row in rows.iter_rows(named=True):
        new = _emission(contract, json.loads(row["entries"] or "[]"))
        diff = review.checkpoint_diff(row, {"entries": row["entries"], "emission": json.dumps(new)})
        out.append(
            {
                "checkpoint_id": row["checkpoint_id"],
                "reproduced": review.emission_hash(new) == review.emission_hash(row["emission"]),
                "stored_hash": review.emission_hash(row["emission"]),
                "candidate_hash": review.emission_hash(new),
                "diff": diff,
            }
        )
    return out


def stability(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Rank and share stability over all compared checkpoints."""
    rows = [d for r in results for d in r["diff"]]
    return {
        "checkpoints": len(results),
        "reproduced": sum(r["reproduced"] for r in results),
        "crunchers": len(rows),
        "same_rank": sum(d["rank"] == d["previous_rank"] for d in rows),
        "share_changed": sum(d["share_change"] != 0 for d in rows),
        "largest_share_change": max((abs(d["share_change"]) for d in rows), default=0),
    }

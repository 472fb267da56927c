"""Why a model got its share of a checkpoint: its rank and share and the rule that gave them, its
ranking value re-derived from the period's snapshots, and each snapshot's Merkle leaf and proof.

The ranking value is recomputed by the same function that built the checkpoint
(`scoring.ranking.checkpoint_entries`) over that model's snapshots alone: a model's aggregate
depends only on its own snapshots, so the two must agree, and a participant can follow each
snapshot down to its proof (`scoring.merkle.proof_for`, verifiable offline). Rules that rank per
group (`TopKPerGroup`) rank the period's leaderboards instead of its snapshots; for them the value
is reported as stored, not recomputed.
"""

from __future__ import annotations

import json
import math
from typing import Any

from coordinator_dagster.scoring import ranking
from coordinator_dagster.scoring.merkle import build_checkpoint_tree, proof_for
from coordinator_dagster.scoring.top_k_rewards import TopKPerGroup


def explain(lake: Any, contract: Any, checkpoint_id: str, model_id: str) -> dict[str, Any]:
    """The explanation of one model in one checkpoint; KeyError if either is unknown."""
    found = lake.query("SELECT * FROM checkpoints WHERE checkpoint_id = ?", [checkpoint_id])
    if not found.height:
        raise KeyError(f"no checkpoint {checkpoint_id!r}")
    row = found.row(0, named=True)
    entries = json.loads(row["entries"] or "[]")
    entry = next((e for e in entries if e.get("model_id") == model_id), None)
    if entry is None:
        raise KeyError(f"model {model_id!r} is not ranked in {checkpoint_id}")
    emission = json.loads(row["emission"])
    index = entry.get("cruncher_index")
    share = sum(int(r["reward_pct"]) for r in emission.get("cruncher_rewards", []) if r["cruncher_index"] == index)
    rule = contract.build_emission
    snapshots = lake.read_window("snapshots", row["period_start"], row["period_end"], column="period_start")
    tree = build_checkpoint_tree(snapshots.to_dicts())
    mine = snapshots.filter(snapshots["model_id"] == model_id).sort("period_start")
    recomputed = None
    if not isinstance(rule, TopKPerGroup):
        again = ranking.checkpoint_entries(contract, mine, lake.read("models"))
        recomputed = again[0]["ranking_value"] if again else None
    stored = entry.get("ranking_value")
    return {
        "checkpoint_id": checkpoint_id,
        "model_id": model_id,
        "rank": entry.get("rank"),
        "model_count": len(entries),
        "cruncher_index": index,
        "reward_pct": share,
        "rule": getattr(rule, "__name__", type(rule).__name__),
        "ranking_key": entry.get("ranking_key", row["ranking_key"]),
        "ranking_value": stored,
        "recomputed_ranking_value": recomputed,
        "reproducible": recomputed is not None and stored is not None and math.isclose(recomputed, stored, rel_tol=1e-12, abs_tol=1e-15),
        "merkle_root": row["merkle_root"],
        "snapshots": [
            {
                "period_start": s["period_start"].isoformat(),
                "prediction_count": s["prediction_count"],
                "scored_count": s["scored_count"],
                "value": s["value"],
                "proof": proof_for(tree, model_id, s["period_start"]) if tree.checkpoint_root else None,
            }
            for s in mine.iter_rows(named=True)
        ],
    }

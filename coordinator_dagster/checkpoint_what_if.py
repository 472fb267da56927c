"""What-if: the last checkpoints recomputed under a candidate policy (an emission rule, a scoring
function, or both), compared with the stored ones, without writing anything to the lake.

A candidate rule alone (`build_emission`, a `module:function` validated as the contract
validates its own) is applied to each stored checkpoint's ranked entries. A candidate scoring
function re-derives each period first, in memory, by the audit bundles' chain
(`coordinator_dagster.audit.derive`: predictions, inputs and feed → scores → snapshots → ranked
entries), then splits it by the rule. Each result is compared per cruncher with the stored
emission by the review's diff (`checkpoint_review.checkpoint_diff`): old vs new share and rank.
With the contract's own policy every checkpoint is reproduced exactly (same emission hash).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import polars as pl

from coordinator_dagster import checkpoint_review as review
from coordinator_dagster.audit import derive
from coordinator_dagster.audit.bundle import read_period

REPORT_SCHEMA = pl.Schema(
    {
        "checkpoint_id": pl.String,
        "reproduced": pl.Boolean,
        "cruncher_index": pl.Int64,
        "cruncher": pl.String,
        "model_id": pl.String,
        "stored_rank": pl.Int64,
        "candidate_rank": pl.Int64,
        "stored_reward_pct": pl.Int64,
        "candidate_reward_pct": pl.Int64,
        "share_change": pl.Int64,
        "change": pl.String,
    }
)


def candidate_contract(contract: Any, build_emission: str | None = None, scoring_function: str | None = None) -> Any:
    """The contract with `build_emission` and/or `scoring_function` replaced (validated like the
    contract's own fields)."""
    changes = {name: value for name, value in (("build_emission", build_emission), ("scoring_function", scoring_function)) if value}
    if not changes:
        return contract
    return type(contract)(**{**dict(contract), **changes})


def _rescored_entries(lake: Any, contract: Any, row: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    period = read_period(lake, contract, row["period_start"], row["period_end"])
    as_of = derive.scored_as_of(contract, period["predictions"], now)
    scores = derive.derive_scores(contract, period["predictions"], period["ensemble_predictions"], period["inputs"], period["feed_records"], as_of)
    snapshots = derive.derive_snapshots(contract, period["predictions"], scores, period["ensemble_predictions"], row["period_start"], row["period_end"])
    return derive.derive_entries(contract, snapshots, period["models"])


def what_if(lake: Any, contract: Any, checkpoints: int, rescore: bool = False, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per checkpoint (newest first): whether the candidate reproduces it, and the per-cruncher
    diff. `rescore`: re-derive each period's scores with the candidate's scoring function."""
    if rescore and not derive.ranks_snapshots(contract):
        raise ValueError(f"{type(contract.build_emission).__name__} ranks group leaderboards, not a period's snapshots: re-scoring is not supported for it")
    now = now or dt.datetime.now(dt.timezone.utc)
    rows = lake.query(
        "SELECT checkpoint_id, period_start, period_end, entries, emission FROM checkpoints "
        "ORDER BY period_start DESC, checkpoint_id DESC LIMIT ?",
        [checkpoints],
    )
    out = []
    for row in rows.iter_rows(named=True):
        entries = _rescored_entries(lake, contract, row, now) if rescore else json.loads(row["entries"] or "[]")
        new = derive.derive_emission(contract, entries)
        diff = review.checkpoint_diff(row, {"entries": json.dumps(entries), "emission": json.dumps(new)})
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


def report_frame(results: list[dict[str, Any]]) -> pl.DataFrame:
    """One row per checkpoint × cruncher: stored vs candidate rank and share (the what-if table)."""
    rows = [
        {
            "checkpoint_id": r["checkpoint_id"], "reproduced": r["reproduced"], "cruncher_index": d["cruncher_index"],
            "cruncher": d["cruncher"], "model_id": d["model_id"], "stored_rank": d["previous_rank"], "candidate_rank": d["rank"],
            "stored_reward_pct": d["previous_reward_pct"], "candidate_reward_pct": d["reward_pct"],
            "share_change": d["share_change"], "change": d["change"],
        }
        for r in results
        for d in r["diff"]
    ]
    return pl.DataFrame(rows, schema=REPORT_SCHEMA)


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

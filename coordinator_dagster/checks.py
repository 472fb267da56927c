"""Data-quality rules that guard scoring and emission, as plain functions over frames.

Each rule returns a `CheckOutcome`; assets turn them into Dagster asset check results emitted
with the data they describe, so the UI shows why a downstream step did not run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.statuses import PredictionStatus

# Check names: the assets declare them (`AssetCheckSpec`) and the rules below report under them.
# The feed and inputs checks' names are in `coordinator_dagster.feeds.checks`.
SCORES_UNIQUE = "scores_unique_per_prediction"
PENDING_RESOLVED = "pending_predictions_resolved_or_closed"
SCORES_CHECKS = (SCORES_UNIQUE, PENDING_RESOLVED)
REWARDS_SUM_EXACTLY = "rewards_sum_exactly"
NO_NEGATIVE_SHARE = "no_negative_share"
EVERY_RANKED_MODEL_REWARDED = "every_ranked_model_rewarded"
# Its rule lives with the audit bundles' derivation (coordinator_dagster.audit.ranking_check).
RANKING_REPRODUCIBLE = "ranking_reproducible"
CHECKPOINT_CHECKS = (REWARDS_SUM_EXACTLY, NO_NEGATIVE_SHARE, EVERY_RANKED_MODEL_REWARDED, RANKING_REPRODUCIBLE)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def scores_unique(scores: pl.DataFrame) -> CheckOutcome:
    duplicates = scores.group_by("prediction_id").len().filter(pl.col("len") > 1)
    return CheckOutcome(
        SCORES_UNIQUE,
        duplicates.is_empty(),
        "no prediction is scored twice",
        {"duplicate_predictions": duplicates.height, "examples": duplicates["prediction_id"].head(5).to_list()},
    )


def no_prediction_left_behind(predictions: pl.DataFrame, scores: pl.DataFrame, now: dt.datetime, grace_seconds: int) -> CheckOutcome:
    """Every PENDING prediction past its resolvable time plus the grace period is scored or closed."""
    overdue = predictions.filter(
        (pl.col("status") == PredictionStatus.PENDING) & (pl.col("resolvable_at") + dt.timedelta(seconds=grace_seconds) <= now)
    ).join(scores.select("prediction_id"), on="prediction_id", how="anti")
    return CheckOutcome(
        PENDING_RESOLVED,
        overdue.is_empty(),
        "every PENDING prediction past its horizon and grace period is scored or closed with a reason",
        {"left_pending": overdue.height, "examples": overdue["prediction_id"].head(5).to_list()},
    )


def emission_exact(emission: dict[str, Any], entries: list[dict[str, Any]]) -> list[CheckOutcome]:
    rewards = emission.get("cruncher_rewards", [])
    shares = [r["reward_pct"] for r in rewards]
    # A share the rule retains (unfilled top-K slots) is part of the exact total, never lost.
    total = sum(shares) + int(emission.get("retained_pct", 0))
    indices = {r["cruncher_index"] for r in rewards}
    missing = [e["model_id"] for e in entries if e.get("cruncher_index") not in indices]
    return [
        CheckOutcome(
            REWARDS_SUM_EXACTLY,
            total == FRAC64_MULTIPLIER or (not rewards and total == 0 and not entries),
            f"cruncher rewards plus the retained share sum to exactly {FRAC64_MULTIPLIER:,}",
            {"total": total},
        ),
        CheckOutcome(NO_NEGATIVE_SHARE, all(s >= 0 for s in shares), "no reward share is negative", {"min_share": min(shares, default=0)}),
        CheckOutcome(
            EVERY_RANKED_MODEL_REWARDED,
            not missing,
            "every ranked model's cruncher appears in the reward list",
            {"missing": missing[:10]},
        ),
    ]

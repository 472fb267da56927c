"""The chain a checkpoint's numbers come from, as one set of functions: scores from predictions,
inputs and feed records; hourly snapshots from predictions and scores; ranked entries from the
snapshots; the emission from the entries; the Merkle root from the snapshots.

They call the same domain functions as the pipeline's assets (`score_predictions`,
`build_snapshots`, `ranking.checkpoint_entries`, the contract's `build_emission`,
`build_checkpoint_tree`). The audit bundle's writer, its verifier and the checkpoint's
"ranking reproducible" check use them, so "re-derived" always means the same computation.
Frames come back sorted by their identity (scores by prediction, snapshots by hour and model):
row order in the lake is not part of the numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from coordinator_dagster import group_lake
from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring import payouts, ranking
from coordinator_dagster.scoring.merkle import build_checkpoint_tree
from coordinator_dagster.scoring.scores import score_predictions
from coordinator_dagster.scoring.snapshots import build_snapshots
from coordinator_dagster.scoring.top_k_rewards import TopKPerGroup

SCORE_KEY = ("prediction_id",)
SNAPSHOT_KEY = ("period_start", "model_id")
PAYOUT_KEY = ("group_key", "status", "slot", "model_id")


def ranks_snapshots(contract: Any) -> bool:
    """Whether the contract's rule ranks the period's snapshots (the default and reference rules).
    `TopKPerGroup` ranks leaderboards per group built from round scores reaching before the
    period: its bundles carry those round scores instead (`derive_group_entries`)."""
    return not isinstance(contract.build_emission, TopKPerGroup)


def scored_as_of(contract: Any, predictions: pl.DataFrame, now: dt.datetime) -> dt.datetime:
    """The instant scores are re-derived as of: `now`, or earlier once every prediction of the
    period is past its resolvable time plus the grace period (from then on scoring no longer
    depends on the clock, so later bundles of the same data are identical)."""
    if predictions.is_empty():
        return now
    settled = predictions["resolvable_at"].max() + dt.timedelta(seconds=contract.ground_truth_grace_seconds)
    return min(now, settled)


def derive_scores(
    contract: Any, predictions: pl.DataFrame, ensemble_predictions: pl.DataFrame, inputs: pl.DataFrame, feed: pl.DataFrame, now: dt.datetime
) -> pl.DataFrame:
    """Scores of the models' and the ensembles' predictions (ensemble predictions are taken as
    recorded: their weights come from scores before the period)."""
    out = score_predictions(contract, predictions, inputs, feed, now)
    if not ensemble_predictions.is_empty():
        out = pl.concat([out, score_predictions(contract, ensemble_predictions, inputs, feed, now)])
    return out.sort(SCORE_KEY)


def derive_snapshots(
    contract: Any, predictions: pl.DataFrame, scores: pl.DataFrame, ensemble_predictions: pl.DataFrame, start: dt.datetime, end: dt.datetime
) -> pl.DataFrame:
    return build_snapshots(contract, predictions, scores, start, end, ensemble_predictions).sort(SNAPSHOT_KEY)


def derive_entries(contract: Any, snapshots: pl.DataFrame, models: pl.DataFrame) -> list[dict[str, Any]]:
    return ranking.checkpoint_entries(contract, snapshots, models)


def derive_emission(contract: Any, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The emission `build_emission` gives for `entries`, as JSON data (what checkpoints store)."""
    rule = contract.build_emission
    addresses = (contract.crunch_pubkey, contract.compute_provider, contract.data_provider)
    # The production rule decides slots per group; its emission is part of that decision.
    emission = rule.payouts(entries, *addresses).emission if isinstance(rule, TopKPerGroup) else rule(entries, *addresses)
    return emission.model_dump(mode="json")


def derive_group_entries(contract: Any, rounds: pl.DataFrame, models: pl.DataFrame, end: dt.datetime) -> list[dict[str, Any]]:
    """A `TopKPerGroup` checkpoint's entries: the group leaderboards of `rounds` as of `end`."""
    return group_lake.group_entries(contract, rounds, models, end)


def derive_payouts(contract: Any, checkpoint_id: str, entries: list[dict[str, Any]], pool_amount: int | None) -> pl.DataFrame:
    """A `TopKPerGroup` checkpoint's payout table (`checkpoint_payouts` rows), sorted by PAYOUT_KEY."""
    rule = contract.build_emission
    decided = rule.payouts(entries, contract.crunch_pubkey, contract.compute_provider, contract.data_provider, pool_amount=pool_amount)
    return payouts.payout_frame(checkpoint_id, decided.rows, decided.pool_amount, rule.pool_unit).sort(PAYOUT_KEY)


def derive_merkle_root(snapshots: pl.DataFrame) -> str | None:
    return build_checkpoint_tree(snapshots.to_dicts()).checkpoint_root


def empty_predictions() -> pl.DataFrame:
    return schemas.empty(schemas.PREDICTIONS)


def first_difference(name: str, stored: pl.DataFrame, derived: pl.DataFrame, key: tuple[str, ...]) -> str | None:
    """None when the two frames are equal value for value (same columns, dtypes, rows; floats
    compared exactly); else a sentence naming the first differing row and column."""
    if stored.columns != derived.columns:
        return f"{name}: columns differ: stored {stored.columns}, re-derived {derived.columns}"
    for column in stored.columns:
        if stored[column].dtype != derived[column].dtype:
            return f"{name}: column {column} is {stored[column].dtype} stored, {derived[column].dtype} re-derived"
    if stored.height != derived.height:
        missing = derived.join(stored.select(key), on=list(key), how="anti")
        extra = stored.join(derived.select(key), on=list(key), how="anti")
        example = (missing.select(key).row(0) if missing.height else extra.select(key).row(0) if extra.height else None)
        return f"{name}: {stored.height} rows stored, {derived.height} re-derived (first row not in both: {example})"
    if stored.equals(derived):
        return None
    for index in range(stored.height):
        a, b = stored.row(index, named=True), derived.row(index, named=True)
        for column in stored.columns:
            if a[column] != b[column] and not (a[column] != a[column] and b[column] != b[column]):  # NaN == NaN here
                where = ", ".join(f"{k}={a[k]}" for k in key)
                return f"{name}: row {index} ({where}) column {column}: stored {a[column]!r}, re-derived {b[column]!r}"
    return None

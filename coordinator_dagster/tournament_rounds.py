"""The steps of a tournament round over the lake, shared by the report API's tournament routes,
the Dagster assets partitioned by round and the `coordinator demo` of a tournament workspace.

features → samples (the round's inputs) → predictions (every model once per sample) → truth →
scores (matched by sample id) → snapshots (one per model per round) → leaderboard (over rounds)
→ checkpoint (one per round, its emission ranked on the round's scores).

A competition is a tournament when its contract schedules no rounds of its own
(`scheduled_predictions` empty, as the reference's tournament config has it) and has no density
profiles: its rounds come from uploads. Each step is idempotent where the rows are derived
(scores, snapshots, leaderboard, checkpoint) and refuses to overwrite facts: a round's
predictions are recorded once, and its truth cannot change once its checkpoint left PENDING.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl
from pydantic import BaseModel

from coordinator_dagster.checkpoint_lifecycle import Change, event_row, event_time, may_rebuild, status_change
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.models.runner import ModelSpec
from coordinator_dagster.scoring import tournament as domain
from coordinator_dagster.scoring.merkle import leaf_hash, merkle_root
from coordinator_dagster.scoring.ranking import rank
from coordinator_dagster.statuses import CheckpointStatus, PredictionStatus
from coordinator_dagster.tournament_lake import ROUND_CHECKPOINTS, ROUND_SNAPSHOTS, RoundLake
from coordinator_dagster.tournament_models import TournamentRunner, answers
from coordinator_dagster.tournament_publish import append_node_event, node_checkpoint_events, publish_checkpoint, publish_leaderboard

UTC = dt.timezone.utc


class RoundExists(domain.RoundError):
    """The round already has predictions: they are facts and are not recorded twice."""


class RoundNotFound(domain.RoundError):
    """The step needs rows the round does not have yet (no features, no predictions, no truth)."""


def is_tournament(contract: CrunchContract) -> bool:
    return not contract.scheduled_predictions and not contract.prediction_profiles


# ---- models -------------------------------------------------------------------------------------


def output_validator(output_type: type[BaseModel]) -> Callable[[Any], dict[str, Any]]:
    """The contract's output check: the answer validates as `output_type` and every number in it
    is finite (a NaN prediction would score as a number)."""

    def validate(answer: Any) -> dict[str, Any]:
        if not isinstance(answer, Mapping):
            raise ValueError(f"the answer must be an object, got {type(answer).__name__}")
        output = output_type.model_validate(dict(answer)).model_dump(mode="json")
        for key, value in output.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{key!r} must be a finite number, got {value!r}")
        return output

    return validate


# ---- the round's steps ----------------------------------------------------------------------------


def record_features(lake: RoundLake, round_id: str, features: Sequence[Mapping[str, Any]], at: dt.datetime) -> pl.DataFrame:
    """The round's samples (its inputs). Re-recording the same features is a no-op; different
    features after predictions exist are refused (the predictions answered the first ones)."""
    samples = domain.round_samples(round_id, features)
    with lake.round_lock(round_id):
        existing = lake.read_round("samples", round_id)
        if lake.has_round("predictions", round_id) and not existing.is_empty():
            if not existing.select(domain.SAMPLES.names()).equals(samples.select(domain.SAMPLES.names())):
                raise RoundExists(f"round {round_id} already has predictions for other features")
            return existing
        lake.write_round("samples", round_id, samples)
        _write_recorded_at(lake, round_id, at)
    return samples


def _write_recorded_at(lake: RoundLake, round_id: str, at: dt.datetime) -> None:
    # When the features were recorded: the round's period start in its snapshots.
    path = lake.root / "samples" / f"round={round_id}" / "recorded_at"
    path.write_text(at.astimezone(UTC).isoformat(), encoding="utf-8")


def _recorded_at(lake: RoundLake, round_id: str, default: dt.datetime) -> dt.datetime:
    path = lake.root / "samples" / f"round={round_id}" / "recorded_at"
    return dt.datetime.fromisoformat(path.read_text(encoding="utf-8")) if path.is_file() else default


def run_inference(lake: RoundLake, round_id: str, runner: TournamentRunner, validate: Callable[[Any], dict[str, Any]]) -> pl.DataFrame:
    """Every model once per sample of the recorded round, in its worker process (`runner`); one
    prediction per model per sample."""
    with lake.round_lock(round_id):
        if lake.has_round("predictions", round_id):
            raise RoundExists(f"round {round_id} already has predictions; a round is predicted once")
        samples = lake.read_round("samples", round_id)
        if samples.is_empty():
            raise RoundNotFound(f"round {round_id} has no features")
        outcomes = runner.predict_samples(domain.model_features(samples))
        predictions = domain.answered_round(samples, answers(outcomes), validate)
        lake.write_round("predictions", round_id, predictions)
    return predictions


def _events(lake: RoundLake, round_id: str) -> pl.DataFrame:
    # The round lake's own events and the node's (`tournament_publish`: changes made through the
    # shared checkpoint routes count too).
    return pl.concat([lake.read_checkpoint_events(round_id), node_checkpoint_events(lake, round_id)], how="vertical")


def checkpoint_status(lake: RoundLake, round_id: str) -> CheckpointStatus | None:
    """The round's checkpoint's current status: its newest event, PENDING as built, None if none."""
    events = _events(lake, round_id)
    if not events.is_empty():
        return CheckpointStatus(events.sort("event_at")["status"][-1])
    return CheckpointStatus.PENDING if lake.has_round("checkpoints", round_id) else None


def record_truth(lake: RoundLake, round_id: str, ground_truth: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """The round's ground truth; refused (TruthLocked) when it differs from the recorded truth
    once the round's checkpoint has left PENDING."""
    truth = domain.truth_frame(round_id, ground_truth)
    with lake.round_lock(round_id):
        if not lake.has_round("predictions", round_id):
            raise RoundNotFound(f"round {round_id} has no predictions to score")
        domain.check_truth_change(lake.read_round("truth", round_id), truth, checkpoint_status(lake, round_id))
        lake.write_round("truth", round_id, truth)
    return truth


def score(lake: RoundLake, round_id: str, score_function: domain.ScoreFunction) -> pl.DataFrame:
    """The round's scores from its predictions and truth (a pure function of both: re-running
    it gives the same rows)."""
    truth = lake.read_round("truth", round_id)
    if truth.is_empty():
        raise RoundNotFound(f"round {round_id} has no truth")
    with lake.round_lock(round_id):
        if not may_rebuild(checkpoint_status(lake, round_id)) and lake.has_round("scores", round_id):
            return lake.read_round("scores", round_id)  # the checkpoint's scores are final
        scores = domain.score_round(lake.read_round("predictions", round_id), truth, score_function)
        lake.write_round("scores", round_id, scores)
    return scores


def snapshots(lake: RoundLake, round_id: str, contract: CrunchContract, scored_at: dt.datetime) -> pl.DataFrame:
    """One row per model of the round: counts, the mean successful score and the contract's
    summary of its score results (`aggregate_snapshot`)."""
    if not may_rebuild(checkpoint_status(lake, round_id)) and lake.has_round("snapshots", round_id):
        return lake.read_round("snapshots", round_id)  # the checkpoint's Merkle root covers these
    predictions = lake.read_round("predictions", round_id)
    scores = lake.read_round("scores", round_id)
    # Whole seconds: the Merkle leaf's canonical timestamps have no fractions.
    scored_at = scored_at.astimezone(UTC).replace(microsecond=0)
    start = _recorded_at(lake, round_id, scored_at).astimezone(UTC).replace(microsecond=0)
    rows = []
    for model_id in sorted(set(predictions["model_id"].to_list())):
        mine = scores.filter(model_id=model_id)
        results = [json.loads(r) for r in mine.sort("sample_id")["result"].to_list()]
        summary = dict(contract.aggregate_snapshot(results)) if results else {"value": None}
        ok = mine.filter(pl.col("success"))
        rows.append(
            {
                "round_id": round_id,
                "model_id": model_id,
                "period_start": start,
                "period_end": scored_at,
                "prediction_count": predictions.filter(model_id=model_id).height,
                "scored_count": ok.height,
                "failed_count": predictions.filter(model_id=model_id, status=PredictionStatus.FAILED.value).height,
                "value": ok["value"].mean() if ok.height else None,
                "result_summary": json.dumps(summary, sort_keys=True, default=str),
            }
        )
    frame = pl.DataFrame(rows, schema=ROUND_SNAPSHOTS) if rows else ROUND_SNAPSHOTS.to_frame()
    lake.write_round("snapshots", round_id, frame)
    return frame


def leaderboard(lake: RoundLake, contract: CrunchContract) -> pl.DataFrame:
    """Per model over every round: each aggregation window's mean of round scores whose round was
    scored less than that many hours before the newest round (the newest included) (not of the wall clock, so a replay gives
    the same table), ranked on the contract's ranking key."""
    snaps = lake.read_all("snapshots")
    aggregation = contract.aggregation
    if snaps.is_empty():
        board = pl.DataFrame(schema={"rank": pl.Int64, "model_id": pl.String, "rounds": pl.Int64, "prediction_count": pl.Int64})
        lake.write_leaderboard(board)
        publish_leaderboard(lake, contract, board, None)
        return board
    newest = snaps["period_end"].max()
    windows = [
        pl.col("value").filter(pl.col("period_end") > newest - dt.timedelta(hours=_hours(hours))).mean().alias(name)
        for name, hours in aggregation.windows.items()
    ]
    board = snaps.group_by("model_id").agg(
        pl.col("round_id").n_unique().cast(pl.Int64).alias("rounds"),
        pl.col("prediction_count").sum(),
        pl.col("value").mean().alias(aggregation.value_field if aggregation.value_field not in aggregation.windows else "value_all"),
        *windows,
    )
    key = aggregation.ranking_key if aggregation.ranking_key in board.columns else aggregation.value_field
    board = rank(board, key, aggregation.ranking_direction, "prediction_count")
    lake.write_leaderboard(board)
    publish_leaderboard(lake, contract, board, newest)
    return board


def _hours(window: Any) -> float:
    return float(getattr(window, "hours", window))


def checkpoint(lake: RoundLake, round_id: str, contract: CrunchContract, specs: Sequence[ModelSpec], built_at: dt.datetime) -> pl.DataFrame:
    """The round's emission checkpoint: models ranked on the round's mean score, paid by the
    contract's `build_emission`; rebuilt only while PENDING (a submitted one is returned as is)."""
    with lake.round_lock(round_id):
        status = checkpoint_status(lake, round_id)
        if not may_rebuild(status):
            return lake.read_round("checkpoints", round_id)
        snaps = lake.read_round("snapshots", round_id)
        if snaps.is_empty():
            raise RoundNotFound(f"round {round_id} has no snapshots")
        index = {spec.model_id: spec.cruncher_index for spec in specs}
        ranked = rank(snaps.select("model_id", "value", "prediction_count"), "value", contract.aggregation.ranking_direction, "prediction_count")
        entries = [
            {"model_id": row["model_id"], "rank": row["rank"], "value": row["value"], "prediction_count": row["prediction_count"], "cruncher_index": index.get(row["model_id"])}
            for row in ranked.iter_rows(named=True)
        ]
        emission = contract.build_emission(entries, contract.crunch_pubkey, contract.compute_provider, contract.data_provider)
        emission_json = emission.model_dump_json() if isinstance(emission, BaseModel) else json.dumps(emission, sort_keys=True)
        leaves = [leaf_hash(row) for row in snaps.sort("model_id").iter_rows(named=True)]
        frame = pl.DataFrame(
            [
                {
                    "checkpoint_id": round_id,
                    "round_id": round_id,
                    "built_at": built_at,
                    "status": CheckpointStatus.PENDING.value,
                    "model_count": len(entries),
                    "entries": json.dumps(entries, sort_keys=True),
                    "emission": emission_json,
                    "merkle_root": merkle_root(leaves),
                }
            ],
            schema=ROUND_CHECKPOINTS,
        )
        lake.write_round("checkpoints", round_id, frame)
        publish_checkpoint(lake, frame, snaps)
    return frame


def change_checkpoint_status(lake: RoundLake, round_id: str, wanted: str, tx_hash: str | None, caller: str, now: dt.datetime) -> CheckpointStatus:
    """One step forward in the round checkpoint's lifecycle (409-style Conflict otherwise)."""
    with lake.round_lock(round_id):
        current = checkpoint_status(lake, round_id)
        if current is None:
            raise RoundNotFound(f"round {round_id} has no checkpoint")
        change: Change | None = status_change(round_id, current, wanted, tx_hash)
        if change is None:
            return current
        events = _events(lake, round_id)
        last = events["event_at"].max() if not events.is_empty() else None
        event = event_row(round_id, change, caller, event_time(now, last))
        lake.append_checkpoint_event(event)
        append_node_event(lake, event)  # the shared checkpoint routes derive the status from these
        return change.status


def status(lake: RoundLake, round_id: str) -> dict[str, Any]:
    """The round's counts by prediction status, with its checkpoint's status."""
    answer = domain.round_status(round_id, lake.read_round("predictions", round_id), lake.read_round("scores", round_id))
    current = checkpoint_status(lake, round_id)
    answer["checkpoint_status"] = current.value if current is not None else None
    answer["has_truth"] = lake.has_round("truth", round_id)
    return answer


def score_and_publish(
    lake: RoundLake, round_id: str, contract: CrunchContract, specs: Sequence[ModelSpec], ground_truth: Any, now: dt.datetime
) -> pl.DataFrame:
    """Truth → scores → snapshots → leaderboard → checkpoint, as the score route and the demo
    run them in one go (the Dagster assets run the same steps one asset each)."""
    record_truth(lake, round_id, ground_truth)
    scores = score(lake, round_id, contract.scoring_function)
    if may_rebuild(checkpoint_status(lake, round_id)):
        snapshots(lake, round_id, contract, now)
        leaderboard(lake, contract)
        checkpoint(lake, round_id, contract, specs, now)
    return scores


def read_upload(lake: RoundLake, round_id: str, kind: str) -> Any:
    """An uploaded round file: `features.json` holds a list of samples (or the API's body
    `{"features": [...]}`), `truth.json` the truth (or `{"ground_truth": ...}`)."""
    path = lake.upload_path(round_id, kind)
    if not path.is_file():
        raise RoundNotFound(f"round {round_id} has no uploaded {kind} ({path})")
    data = json.loads(path.read_text(encoding="utf-8"))
    wrapper = "features" if kind == "features" else "ground_truth"
    if isinstance(data, dict) and set(data) == {wrapper}:
        data = data[wrapper]
    if kind == "features" and not isinstance(data, list):
        raise domain.RoundError(f"{path}: features are a list of samples")
    return data

"""Tournament rounds: samples the operator uploads, one prediction per model per sample, and
scores against ground truth matched by sample id.

A round is a list of feature dicts. Each sample has an id: its `sample_id` field when the
upload gives one to every sample, otherwise its index in the uploaded list ("0", "1", …). The
ground truth names its samples the same way (its own `sample_id` fields, or its index in the
truth list, which the operator uploads in the features' order). Predictions and truth are joined
on that id, never by position among the predictions: the reference engine zips a model's PENDING
predictions with the truth list, so one FAILED sample moves every later prediction onto the next
sample's truth. Here a FAILED or ABSENT prediction is simply not scored, and a prediction whose
sample has no truth stays PENDING.

A round's truth is fixed once its checkpoint has left PENDING (`check_truth_change`).

The reference pack's example (house prices) is `house_price_score`:
max(0, 1 − |prediction − price| / price), computed exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Context, Decimal
from typing import Any

import polars as pl

from coordinator_dagster.statuses import CheckpointStatus, PredictionStatus

_CONTEXT = Context(prec=34)

SAMPLES = pl.Schema({"round_id": pl.String, "sample_id": pl.String, "sample_index": pl.Int64, "features": pl.String})
TRUTH = pl.Schema({"round_id": pl.String, "sample_id": pl.String, "truth": pl.String})
ROUND_PREDICTIONS = pl.Schema(
    {
        "prediction_id": pl.String,
        "round_id": pl.String,
        "sample_id": pl.String,
        "model_id": pl.String,
        "status": pl.String,  # PENDING, FAILED or ABSENT, as created
        "output": pl.String,  # JSON
        "failed_reason": pl.String,
    }
)
ROUND_SCORES = pl.Schema(
    {
        "prediction_id": pl.String,
        "round_id": pl.String,
        "sample_id": pl.String,
        "model_id": pl.String,
        "value": pl.Float64,
        "success": pl.Boolean,
        "failed_reason": pl.String,
        "result": pl.String,  # the full score result as JSON
    }
)

ScoreFunction = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]]
TournamentModel = Callable[[dict[str, Any]], Any]


class RoundError(ValueError):
    """An upload that does not describe a round (ids missing, duplicated or mixed)."""


class TruthLocked(RoundError):
    """Different truth for a round whose checkpoint has already left PENDING."""


def sample_ids(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each item's sample id: all explicit `sample_id`s, or all positions; never a mix."""
    explicit = ["sample_id" in item for item in items]
    if any(explicit) and not all(explicit):
        raise RoundError("either every sample has a sample_id or none does")
    ids = [str(item["sample_id"]) for item in items] if all(explicit) and items else [str(i) for i in range(len(items))]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise RoundError(f"duplicate sample ids: {duplicates}")
    return ids


def scope_key(round_id: str, sample_id: str) -> str:
    """The per-sample scope key, as the reference's `<round_id>:<index>`."""
    return f"{round_id}:{sample_id}"


def round_samples(round_id: str, features: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """One row per uploaded sample."""
    if not features:
        raise RoundError("a round needs at least one sample")
    ids = sample_ids(features)
    rows = {
        "round_id": [round_id] * len(ids),
        "sample_id": ids,
        "sample_index": list(range(len(ids))),
        "features": [json.dumps(dict(f), sort_keys=True) for f in features],
    }
    return pl.DataFrame(rows, schema=SAMPLES)


def truth_frame(round_id: str, ground_truth: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """One row per truth item; a single object is the truth of a one-sample round."""
    items = [ground_truth] if isinstance(ground_truth, Mapping) else list(ground_truth)
    ids = sample_ids(items)
    return pl.DataFrame(
        {"round_id": [round_id] * len(ids), "sample_id": ids, "truth": [json.dumps(dict(t), sort_keys=True) for t in items]},
        schema=TRUTH,
    )


def _model_features(features: Mapping[str, Any]) -> dict[str, Any]:
    # The sample id is the node's bookkeeping, not a feature a model may learn from.
    return {k: v for k, v in features.items() if k != "sample_id"}


def model_features(samples: pl.DataFrame) -> list[dict[str, Any]]:
    """What each model is handed, one object per sample in the round's order."""
    return [_model_features(json.loads(features)) for features in samples.sort("sample_index")["features"].to_list()]


# A model's answer to one sample: (the answer, None), or (None, why it has none).
Answer = tuple[Any, str | None]


def predict_round(samples: pl.DataFrame, models: Mapping[str, TournamentModel], validate: Callable[[Any], dict[str, Any]]) -> pl.DataFrame:
    """Call every model once per sample (in-process); one prediction row per model per sample.
    A model that raises, or whose answer `validate` refuses, gets a FAILED row with the reason."""
    answers: dict[str, list[Answer]] = {}
    for model_id, model in models.items():
        answers[model_id] = []
        for features in model_features(samples):
            try:
                answers[model_id].append((model(features), None))
            except Exception as exc:  # the model's failure is recorded, not raised: the round goes on
                answers[model_id].append((None, f"{type(exc).__name__}: {exc}"))
    return answered_round(samples, answers, validate)


def answered_round(samples: pl.DataFrame, answers: Mapping[str, Sequence[Answer]], validate: Callable[[Any], dict[str, Any]]) -> pl.DataFrame:
    """One prediction row per model per sample from each model's answers (in the samples'
    order, as `model_features` gives them): PENDING when `validate` accepts the answer, FAILED
    with the reason otherwise."""
    rows = []
    for position, (round_id, sample_id) in enumerate(samples.sort("sample_index").select("round_id", "sample_id").iter_rows()):
        for model_id in sorted(answers):
            row = {"prediction_id": f"{scope_key(round_id, sample_id)}:{model_id}", "round_id": round_id, "sample_id": sample_id, "model_id": model_id}
            answer, reason = answers[model_id][position]
            if reason is None:
                try:
                    output = validate(answer)
                except Exception as exc:  # an invalid answer fails this prediction only
                    reason = f"{type(exc).__name__}: {exc}"
            if reason is not None:
                rows.append(row | {"status": PredictionStatus.FAILED.value, "output": None, "failed_reason": reason})
                continue
            rows.append(row | {"status": PredictionStatus.PENDING.value, "output": json.dumps(output, sort_keys=True), "failed_reason": None})
    return pl.DataFrame(rows, schema=ROUND_PREDICTIONS) if rows else ROUND_PREDICTIONS.to_frame()


def score_round(predictions: pl.DataFrame, truth: pl.DataFrame, score: ScoreFunction) -> pl.DataFrame:
    """One score row per PENDING prediction whose sample has truth, joined on (round_id,
    sample_id). A score function that raises gives an unsuccessful row with the reason."""
    joined = (
        predictions.filter(pl.col("status") == PredictionStatus.PENDING.value)
        .join(truth, on=["round_id", "sample_id"], how="inner")
        .sort("round_id", "sample_id", "model_id")
    )
    rows = []
    for row in joined.iter_rows(named=True):
        keys = {name: row[name] for name in ("prediction_id", "round_id", "sample_id", "model_id")}
        try:
            result = dict(score(json.loads(row["output"]), json.loads(row["truth"])))
        except Exception as exc:  # a scoring bug fails this prediction's score, not the round
            result = {"value": None, "success": False, "failed_reason": f"{type(exc).__name__}: {exc}"}
        value = result.get("value")
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        success = bool(result.get("success", True)) and number
        rows.append(
            keys
            | {
                "value": float(value) if success else None,
                "success": success,
                "failed_reason": None if success else (result.get("failed_reason") or "no finite score value"),
                "result": json.dumps(result, sort_keys=True),
            }
        )
    return pl.DataFrame(rows, schema=ROUND_SCORES) if rows else ROUND_SCORES.to_frame()


def round_status(round_id: str, predictions: pl.DataFrame, scores: pl.DataFrame) -> dict[str, Any]:
    """Counts by status (SCORED derived from the score rows), models and samples, and the round's
    state: not_found, inference_complete (some PENDING), scored (nothing PENDING)."""
    mine = predictions.filter(round_id=round_id)
    if mine.is_empty():
        return {"round_id": round_id, "status": "not_found", "total": 0, "model_count": 0, "sample_count": 0, "by_status": {}}
    scored_ids = set(scores.filter(round_id=round_id)["prediction_id"].to_list())
    status = pl.when(pl.col("prediction_id").is_in(list(scored_ids))).then(pl.lit(PredictionStatus.SCORED.value)).otherwise(pl.col("status"))
    counts = mine.select(status.alias("status")).group_by("status").len().sort("status")
    by_status = dict(counts.iter_rows())
    return {
        "round_id": round_id,
        "status": "inference_complete" if by_status.get(PredictionStatus.PENDING.value) else "scored",
        "total": mine.height,
        "model_count": mine["model_id"].n_unique(),
        "sample_count": mine["sample_id"].n_unique(),
        "by_status": by_status,
    }


def check_truth_change(existing: pl.DataFrame, new: pl.DataFrame, checkpoint_status: CheckpointStatus | str | None) -> None:
    """Refuse truth that differs from the round's recorded truth once its checkpoint has left
    PENDING (submitted checkpoints are immutable, so their scores must be too). The same truth
    again, or any truth before a checkpoint exists or while it is PENDING, is allowed."""
    if checkpoint_status is None or CheckpointStatus(checkpoint_status) == CheckpointStatus.PENDING:
        return
    columns = ["round_id", "sample_id", "truth"]
    if not existing.select(columns).sort(columns).equals(new.select(columns).sort(columns)):
        raise TruthLocked(f"the round's checkpoint is {CheckpointStatus(checkpoint_status).value}: its truth can no longer change")


def house_price_score(prediction: Mapping[str, Any], ground_truth: Mapping[str, Any]) -> dict[str, Any]:
    """max(0, 1 − |prediction − price| / price); a price ≤ 0 cannot be scored. Computed in
    Decimal from the numbers' shortest text, then given as the nearest float."""
    price = Decimal(repr(float(ground_truth.get("price", 0.0))))
    predicted = Decimal(repr(float(prediction.get("prediction", 0.0))))
    if price <= 0:
        return {"value": None, "success": False, "failed_reason": "actual price is zero or negative"}
    error = _CONTEXT.divide(_CONTEXT.abs(_CONTEXT.subtract(predicted, price)), price)
    value = max(Decimal(0), _CONTEXT.subtract(Decimal(1), error))
    return {"value": float(value), "prediction": float(predicted), "actual_price": float(price), "pct_error": float(error), "success": True, "failed_reason": None}


def house_price_output(answer: Any) -> dict[str, Any]:
    """The house-price example's output check: an object with a finite number `prediction`."""
    if not isinstance(answer, Mapping):
        raise ValueError(f"the answer must be an object, got {type(answer).__name__}")
    value = answer.get("prediction")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"'prediction' must be a finite number, got {value!r}")
    return dict(answer)

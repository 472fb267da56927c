"""Ground truth and scoring over whole partitions.

The defaults run as polars expressions over every prediction of a window at once. Custom contract
callables run vectorized when they declare a frame twin (`callables.vectorized`), otherwise row by
row; a row that raises fails only its own score, with the reason, never the rest of the partition.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import polars as pl

from coordinator_dagster.feeds.granularity import granularity_seconds
from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.callables import vectorized, vectorized_twin
from coordinator_dagster.domain_types import ScoreResult
from coordinator_dagster.statuses import PredictionStatus

if TYPE_CHECKING:
    from coordinator_dagster.contracts import CrunchContract

TRUTH_COLUMNS = ["entry_price", "resolved_price", "profit", "direction_up"]
_TRUTH_SCHEMA = {
    "input_id": pl.String,
    "entry_price": pl.Float64,
    "resolved_price": pl.Float64,
    "profit": pl.Float64,
    "direction_up": pl.Boolean,
    "truth_state": pl.String,  # resolved | pending | stale | failed
    "truth_reason": pl.String,
}


def _close_offset_us(feed: pl.DataFrame) -> pl.Expr:
    """Microseconds from a record's `ts_event` to its close: a candle (keyed by its open time)
    closes one granularity later; a tick is its own close."""
    steps = {g: granularity_seconds(g) * 1_000_000 for g in feed["granularity"].drop_nulls().unique()}
    return (
        pl.when(pl.col("kind") == "candle")
        .then(pl.col("granularity").replace_strict(steps, default=0, return_dtype=pl.Int64))
        .otherwise(0)
    )


def with_close_ts(feed: pl.DataFrame) -> pl.DataFrame:
    return feed.with_columns(
        (pl.col("ts_event") + pl.duration(microseconds=_close_offset_us(feed))).alias("close_ts")
    )


def _record_close_ts(record: dict[str, Any]) -> dt.datetime:
    if record.get("kind") == "candle" and record.get("granularity"):
        return record["ts_event"] + dt.timedelta(seconds=granularity_seconds(record["granularity"]))
    return record["ts_event"]


def _is_stale(lag: Any, horizon: Any, fraction: float) -> Any:
    """Whether the newest price is older than `fraction` × horizon at T + horizon (`lag` and
    `horizon` in one unit; numbers or polars expressions). A fraction of 0 turns the guard off,
    as in the reference engine: the truth is whatever the feed holds at T + horizon."""
    if fraction <= 0:
        return False
    return lag > horizon * fraction


def _truth_frame(
    feed: pl.DataFrame, inputs: pl.DataFrame, staleness_fraction: float
) -> pl.DataFrame:
    """Default ground truth for every input at once (the rule of `default_resolve_ground_truth`)."""
    if inputs.is_empty():
        return pl.DataFrame(schema=_TRUTH_SCHEMA)
    timed = with_close_ts(feed)
    closes = timed.select(
        "subject", pl.col("close_ts").alias("at"), pl.coalesce("close", "price").alias("px"), pl.lit(1).alias("rank")
    )
    # A candle's open is the price at its open time: the entry when no record closes there.
    opens = timed.filter(pl.col("kind") == "candle").select(
        "subject", pl.col("ts_event").alias("at"), pl.col("open").alias("px"), pl.lit(0).alias("rank")
    )
    entry_points = (
        pl.concat([closes, opens])
        .drop_nulls("px")
        .sort("subject", "at", "rank")
        .unique(["subject", "at"], keep="last", maintain_order=True)  # a close beats an open
        .sort("at")
    )
    resolved_points = closes.drop_nulls("px").sort("subject", "at").unique(["subject", "at"], keep="last").sort("at")
    left = inputs.select("input_id", "subject", "round_ts", "resolvable_at").sort("round_ts")
    entry = left.join_asof(
        entry_points.select("subject", pl.col("at").alias("entry_ts"), pl.col("px").alias("entry_price")),
        left_on="round_ts",
        right_on="entry_ts",
        by="subject",
        strategy="backward",
        check_sortedness=False,  # sorted above; polars cannot verify it within `by` groups
    ).sort("resolvable_at")
    both = entry.join_asof(
        resolved_points.select("subject", pl.col("at").alias("resolved_ts"), pl.col("px").alias("resolved_price")),
        left_on="resolvable_at",
        right_on="resolved_ts",
        by="subject",
        strategy="backward",
        check_sortedness=False,
    )
    has_window = (
        pl.col("entry_ts").is_not_null()
        & pl.col("resolved_ts").is_not_null()
        & (pl.col("resolved_ts") > pl.col("round_ts"))
        & (pl.col("entry_price") != 0)
    )
    stale = _is_stale(
        (pl.col("resolvable_at") - pl.col("resolved_ts")).dt.total_microseconds(),
        (pl.col("resolvable_at") - pl.col("round_ts")).dt.total_microseconds(),
        staleness_fraction,
    )
    state = (
        pl.when(~has_window)
        .then(pl.lit("pending"))
        .when(stale)
        .then(pl.lit("stale"))
        .otherwise(pl.lit("resolved"))
    )
    resolved = state == "resolved"
    return both.select(
        "input_id",
        pl.when(resolved).then(pl.col("entry_price")).alias("entry_price"),
        pl.when(resolved).then(pl.col("resolved_price")).alias("resolved_price"),
        pl.when(resolved)
        .then((pl.col("resolved_price") - pl.col("entry_price")) / pl.col("entry_price").abs())
        .alias("profit"),
        pl.when(resolved).then(pl.col("resolved_price") > pl.col("entry_price")).alias("direction_up"),
        state.alias("truth_state"),
        pl.lit(None, dtype=pl.String).alias("truth_reason"),
    ).cast(_TRUTH_SCHEMA)


@vectorized(_truth_frame)
def default_resolve_ground_truth(records: list[dict[str, Any]], input: dict[str, Any]) -> dict[str, Any] | None:
    """The price at the round time T to the price at T + horizon; None means "not resolvable yet".

    `records` are the subject's feed records from `truth_window` (oldest first): the newest one
    that closes at or before T, then every one that closes after T up to T + horizon. A candle is
    keyed by its open time and closes one granularity later; a tick closes at its own time.

    - entry = the price at T: the close of the newest record closing at or before T (for candles
      the one opening at T - step), or, when a candle opens later than that record closes but
      still at or before T, that candle's open.
    - resolved = the close of the newest record closing at or before T + horizon; it must close
      after T (otherwise no price is known past the round yet).
    - stale: the resolved record closes more than `max_ground_truth_staleness_fraction` × horizon
      before T + horizon; scoring waits. A fraction of 0 turns this guard off.
    - an entry price of 0 gives no return: not resolvable.
    """
    round_ts, resolvable_at = input["round_ts"], input["resolvable_at"]
    timed = [(_record_close_ts(r), r) for r in records]
    entry: tuple[dt.datetime, float] | None = None
    resolved: tuple[dt.datetime, float] | None = None
    for close_ts, record in timed:
        close = record.get("close") if record.get("close") is not None else record.get("price")
        if record.get("kind") == "candle" and record.get("open") is not None and record["ts_event"] <= round_ts:
            if entry is None or record["ts_event"] > entry[0]:
                entry = (record["ts_event"], record["open"])
        if close is None or close_ts > resolvable_at:
            continue
        if close_ts <= round_ts and (entry is None or close_ts >= entry[0]):
            entry = (close_ts, close)
        if resolved is None or close_ts >= resolved[0]:
            resolved = (close_ts, close)
    if entry is None or resolved is None or resolved[0] <= round_ts or entry[1] == 0:
        return None
    lag, horizon = (resolvable_at - resolved[0]).total_seconds(), (resolvable_at - round_ts).total_seconds()
    if _is_stale(lag, horizon, input.get("max_ground_truth_staleness_fraction", 0.2)):
        return None
    entry_price, resolved_price = entry[1], resolved[1]
    return {
        "entry_price": entry_price,
        "resolved_price": resolved_price,
        "profit": (resolved_price - entry_price) / abs(entry_price),
        "direction_up": resolved_price > entry_price,
    }


def _directional_return_frame(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        (pl.col("prediction_value").sign() * pl.col("profit")).alias("value"),
        pl.lit(True).alias("success"),
        pl.lit(None, dtype=pl.String).alias("failed_reason"),
    )


@vectorized(_directional_return_frame)
def default_scoring_function(prediction: dict[str, Any], ground_truth: dict[str, Any]) -> ScoreResult:
    """Directional return: sign(prediction) × realised return.

    A model earns the move it called and loses the move it called wrong; the size of its number
    does not matter, so no model gains by inflating its outputs. 0 abstains.
    """
    predicted = float(prediction["value"])
    sign = (predicted > 0) - (predicted < 0)
    return ScoreResult(value=sign * float(ground_truth["profit"]))


def truth_window(records: pl.DataFrame, round_ts: dt.datetime, resolvable_at: dt.datetime) -> list[dict[str, Any]]:
    """The records a row-wise `resolve_ground_truth` receives, oldest first: the newest record
    that closes at or before the round time, then every record that closes after it up to the
    resolvable time. `records` is one subject's feed, sorted by `ts_event`.

    With candles keyed by their open time this is the candle closing at T through the candle
    closing at T + horizon, so a reference-style rule (first close → last close) measures
    exactly the predicted move.
    """
    close_ts = with_close_ts(records)["close_ts"]
    first = max(close_ts.search_sorted(round_ts, side="right") - 1, 0)
    last = close_ts.search_sorted(resolvable_at, side="right")
    return records[first:last].to_dicts()


def _row_truth(
    fn: Callable[..., Any], feed: pl.DataFrame, inputs: pl.DataFrame, staleness_fraction: float
) -> pl.DataFrame:
    rows = []
    by_subject = {key[0]: part.sort("ts_event") for key, part in feed.group_by("subject")}
    for item in inputs.iter_rows(named=True):
        records = by_subject.get(item["subject"])
        window = [] if records is None else truth_window(records, item["round_ts"], item["resolvable_at"])
        row = {"input_id": item["input_id"], "truth_state": "pending", "truth_reason": None}
        try:
            truth = fn(window, {**item, "max_ground_truth_staleness_fraction": staleness_fraction})
            if truth is not None:
                row.update({k: truth.get(k) for k in TRUTH_COLUMNS}, truth_state="resolved")
        except Exception as exc:  # a custom callable's bug fails its own input, not the window
            row.update(truth_state="failed", truth_reason=f"resolve_ground_truth raised {exc!r}")
        rows.append(row)
    return pl.DataFrame(rows, schema=_TRUTH_SCHEMA, strict=False)


def resolve_truth(contract: "CrunchContract", feed: pl.DataFrame, inputs: pl.DataFrame) -> pl.DataFrame:
    """Ground truth per input: input_id, the truth columns, truth_state and truth_reason."""
    fn = contract.resolve_ground_truth
    fraction = contract.max_ground_truth_staleness_fraction
    twin = vectorized_twin(fn)
    if twin is not None:
        return twin(feed, inputs, fraction)
    return _row_truth(fn, feed, inputs, fraction)


def _row_scores(contract: "CrunchContract", frame: pl.DataFrame) -> pl.DataFrame:
    values, successes, reasons, results = [], [], [], []
    for row in frame.iter_rows(named=True):
        prediction = {"value": row["prediction_value"], **json.loads(row["output"] or "{}")}
        truth = {k: row[k] for k in TRUTH_COLUMNS}
        try:
            raw = contract.scoring_function(prediction, truth)
            result = contract.score_type.model_validate(
                raw.model_dump() if hasattr(raw, "model_dump") else raw
            )
            if not math.isfinite(result.value):
                raise ValueError(f"score value {result.value!r} is not finite")
        except Exception as exc:  # one bad row fails alone; the partition is still scored
            result = contract.score_type(value=0.0, success=False, failed_reason=f"scoring_function raised {exc!r}")
        values.append(result.value if result.success else None)
        successes.append(result.success)
        reasons.append(result.failed_reason)
        results.append(result.model_dump_json())
    return pl.DataFrame(
        {"value": values, "success": successes, "failed_reason": reasons, "result": results},
        schema={"value": pl.Float64, "success": pl.Boolean, "failed_reason": pl.String, "result": pl.String},
    )


def _result_json(frame: pl.DataFrame) -> pl.Expr:
    return pl.struct(
        pl.col("value"), pl.col("success"), pl.col("failed_reason")
    ).struct.json_encode().alias("result")


def score_predictions(
    contract: "CrunchContract",
    predictions: pl.DataFrame,
    inputs: pl.DataFrame,
    feed: pl.DataFrame,
    now: dt.datetime,
) -> pl.DataFrame:
    """Scores for the predictions that can be scored now, conformed to `schemas.SCORES`.

    Only PENDING predictions whose resolvable time has come are scored (FAILED and ABSENT are
    terminal; before T + horizon the move is not over, whatever the feed holds). A prediction whose
    truth is still unknown `ground_truth_grace_seconds` after its resolvable time is closed with
    a failed score and the reason, instead of staying PENDING forever.
    """
    pending = predictions.filter((pl.col("status") == PredictionStatus.PENDING.value) & (pl.col("resolvable_at") <= now))
    if pending.is_empty():
        return schemas.empty(schemas.SCORES)
    wanted = inputs.join(pending.select("input_id").unique(), on="input_id", how="semi")
    truth = resolve_truth(contract, feed, wanted)
    # PENDING predictions carry no failure reason; the score's own reason replaces the column.
    joined = pending.rename({"value": "prediction_value"}).drop("failed_reason").join(truth, on="input_id", how="left")

    resolved = joined.filter(pl.col("truth_state") == "resolved")
    twin = vectorized_twin(contract.scoring_function)
    if resolved.is_empty():
        scored = resolved.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("value"),
            pl.lit(None, dtype=pl.Boolean).alias("success"),
            pl.lit(None, dtype=pl.String).alias("failed_reason"),
            pl.lit(None, dtype=pl.String).alias("result"),
        )
    elif twin is not None:
        outcome = twin(resolved)
        scored = pl.concat([resolved, outcome], how="horizontal").with_columns(_result_json(outcome))
    else:
        scored = pl.concat([resolved, _row_scores(contract, resolved)], how="horizontal")

    grace = dt.timedelta(seconds=contract.ground_truth_grace_seconds)
    overdue = joined.filter(
        (pl.col("truth_state") != "resolved") & (pl.col("resolvable_at") + grace <= now)
    ).with_columns(
        pl.lit(None, dtype=pl.Float64).alias("value"),
        pl.lit(False).alias("success"),
        pl.when(pl.col("truth_state") == "failed")
        .then(pl.col("truth_reason"))
        .otherwise(
            pl.format(
                "ground truth unavailable ({}) {} s after the resolvable time",
                pl.col("truth_state"),
                pl.lit(contract.ground_truth_grace_seconds),
            )
        )
        .alias("failed_reason"),
    )
    for column in TRUTH_COLUMNS:
        overdue = overdue.with_columns(pl.lit(None).cast(schemas.SCORES[column]).alias(column))
    overdue = overdue.with_columns(_result_json(overdue))

    out = pl.concat([scored, overdue], how="diagonal_relaxed").with_columns(
        pl.lit(contract.scoring_version).alias("scoring_version")
    )
    return schemas.conform(out.select(schemas.SCORES.names()), schemas.SCORES, "scores").sort(
        "round_ts", "subject", "model_id"
    )

"""Scoring + snapshot throughput over >= 1,000,000 predictions, against a per-row Python loop.

Usage: .venv/bin/python benchmarks/scoring_benchmark.py [--models 50] [--days 7] [--loop-sample 30000]

Builds a week of one-minute rounds for BTC and ETH (synthetic feed) with 50 models, then:
  * vectorized: `score_predictions` + `build_snapshots` (default contract: truth, directional
    score, every default metric), hour by hour as live runs do, and over the whole range at once
    as a single-run backfill of the `scores` and `snapshots` assets does;
  * per-row: the reference engine's approach, one prediction at a time through the row-wise
    default callables (truth from the window's records, score, then per-model-hour averages),
    once without and once with the snapshot metrics (row-wise forms), on about `--loop-sample`
    predictions (whole hours), reported as a rate. Neither loop makes database round trips,
    which the reference engine does per row, so both flatter the loop.
Prints predictions per second for both, the speed-up, and the process's peak memory.
"""

import argparse
import bisect
import datetime as dt
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator_dagster.lake import schemas  # noqa: E402
from coordinator_dagster.contracts import default_contract  # noqa: E402
from coordinator_dagster.models.rounds import ROUND_STAMP_FORMAT  # noqa: E402
from coordinator_dagster.scoring.metrics import compute_metrics  # noqa: E402
from coordinator_dagster.scoring.scores import default_resolve_ground_truth, default_scoring_function, score_predictions  # noqa: E402
from coordinator_dagster.scoring.snapshots import build_snapshots, default_aggregate_snapshot  # noqa: E402
from coordinator_dagster.feeds.synthetic import generate_records  # noqa: E402

START = dt.datetime(2026, 11, 15, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)


def build_dataset(models: int, days: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    end = START + dt.timedelta(days=days)
    feed = pl.concat(
        [generate_records(seed=7, subject=s, kind="candle", granularity="1m", start=START - HOUR, end=end + HOUR) for s in ("BTC", "ETH")]
    )
    rounds = pl.datetime_range(START, end, "1m", closed="left", eager=True, time_zone="UTC")
    inputs = pl.concat(
        [
            pl.DataFrame({"round_ts": rounds}).with_columns(
                pl.lit(subject).alias("subject"),
                pl.lit(f"{subject.lower()}-60s").alias("scope_key"),
                (pl.lit(f"{subject.lower()}-60s@") + pl.col("round_ts").dt.strftime(ROUND_STAMP_FORMAT)).alias("input_id"),
                (pl.col("round_ts") + dt.timedelta(minutes=1)).alias("resolvable_at"),
            )
            for subject in ("BTC", "ETH")
        ]
    )
    rng = np.random.default_rng(1)
    model_ids = pl.DataFrame({"model_id": [f"model-{i:03d}" for i in range(models)]})
    predictions = inputs.join(model_ids, how="cross").with_columns(
        (pl.col("input_id") + "/" + pl.col("model_id")).alias("prediction_id"),
        pl.lit("PENDING").alias("status"),
        pl.Series("value", rng.normal(0, 1, inputs.height * models)),
        pl.lit(None, dtype=pl.String).alias("failed_reason"),
        pl.lit(1.0).alias("latency_ms"),
        pl.col("round_ts").alias("predicted_at"),
    ).with_columns(pl.format('{{"value":{}}}', pl.col("value")).alias("output"))
    predictions = schemas.conform(predictions.select(schemas.PREDICTIONS.names()), schemas.PREDICTIONS, "predictions")
    return feed, inputs, predictions


def vectorized(feed, inputs, predictions) -> tuple[float, int, int]:
    contract = default_contract()
    now = predictions["resolvable_at"].max() + dt.timedelta(hours=2)
    hour = pl.col("round_ts").dt.truncate("1h")
    by_hour_preds = dict(predictions.with_columns(hour.alias("h")).partition_by("h", as_dict=True, include_key=False))
    by_hour_inputs = dict(inputs.with_columns(hour.alias("h")).partition_by("h", as_dict=True, include_key=False))
    started = time.perf_counter()
    scored = snaps = 0
    for (start,), preds in sorted(by_hour_preds.items()):
        window_feed = feed.filter(pl.col("ts_event").is_between(start, start + 2 * HOUR, closed="left"))
        scores = score_predictions(contract, preds, by_hour_inputs[(start,)], window_feed, now)
        snapshots = build_snapshots(contract, preds, scores, start, start + HOUR)
        scored += scores.height
        snaps += snapshots.height
    return time.perf_counter() - started, scored, snaps


def vectorized_range(feed, inputs, predictions) -> tuple[float, int, int]:
    """The whole dataset in one pass, as a single-run backfill of the range runs it."""
    contract = default_contract()
    now = predictions["resolvable_at"].max() + dt.timedelta(hours=2)
    start, end = predictions["round_ts"].min(), predictions["round_ts"].max() + HOUR
    started = time.perf_counter()
    scores = score_predictions(contract, predictions, inputs, feed, now)
    snapshots = build_snapshots(contract, predictions, scores, start, end)
    return time.perf_counter() - started, scores.height, snapshots.height


def per_row_loop(feed, predictions, sample: int, with_metrics: bool) -> tuple[float, int]:
    """The reference engine's shape: every prediction looks up its records and is scored alone;
    then each model-hour is summarised (and, with metrics, its metrics computed) on its own."""
    # Whole hours of every model, so each model-hour summary sees all of its rows.
    hours = max(1, sample // predictions.filter(pl.col("round_ts") < START + HOUR).height)
    rows = predictions.filter(pl.col("round_ts") < START + hours * HOUR).to_dicts()
    records = {}
    for subject, part in feed.sort("ts_event").partition_by("subject", as_dict=True).items():
        records[subject[0]] = (part["ts_event"].to_list(), part.to_dicts())
    started = time.perf_counter()
    results: dict[tuple[str, dt.datetime], list[dict]] = {}
    for row in rows:
        times, dicts = records[row["subject"]]
        # `truth_window` for one-minute candles (keyed by open time): the candle closing at the
        # round through the candle closing at the resolvable time.
        lo = bisect.bisect_left(times, row["round_ts"] - MINUTE)
        hi = bisect.bisect_right(times, row["resolvable_at"] - MINUTE)
        truth = default_resolve_ground_truth(dicts[lo:hi], row)
        if truth is None:
            continue
        score = default_scoring_function({"value": row["value"]}, truth)
        hour = row["round_ts"].replace(minute=0, second=0, microsecond=0)
        results.setdefault((row["model_id"], hour), []).append(
            {**score.model_dump(), "model_id": row["model_id"], "input_id": row["input_id"], "round_ts": row["round_ts"],
             "subject": row["subject"], "prediction_value": row["value"], "profit": truth["profit"]}
        )
    contract = default_contract()
    by_hour: dict[dt.datetime, pl.DataFrame] = {}
    for (model_id, hour), score_results in results.items():
        default_aggregate_snapshot(score_results)
        if with_metrics:
            if hour not in by_hour:
                by_hour[hour] = pl.DataFrame([r for (m, h), rs in results.items() if h == hour for r in rs])
            compute_metrics(contract.metrics, pl.DataFrame(score_results), by_hour[hour])
    return time.perf_counter() - started, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--loop-sample", type=int, default=30_000)
    args = parser.parse_args()

    t = time.perf_counter()
    feed, inputs, predictions = build_dataset(args.models, args.days)
    print(f"dataset: {predictions.height:,} predictions ({args.models} models × 2 subjects × {args.days} days of 1-minute rounds), "
          f"{feed.height:,} feed records, built in {time.perf_counter() - t:.1f} s")
    print(f"machine: {platform.python_implementation()} {platform.python_version()}, {__import__('os').cpu_count()} cores")

    seconds, scored, snaps = vectorized(feed, inputs, predictions)
    print(f"vectorized, hour by hour (live runs): {seconds:.2f} s for {predictions.height:,} predictions "
          f"({scored:,} scores, {snaps:,} snapshots) → {predictions.height / seconds:,.0f} predictions/s")
    seconds, scored, snaps = vectorized_range(feed, inputs, predictions)
    fast = predictions.height / seconds
    print(f"vectorized, whole range (backfill / re-score): {seconds:.2f} s "
          f"({scored:,} scores, {snaps:,} snapshots) → {fast:,.0f} predictions/s")

    for with_metrics, label in ((False, "truth + score + snapshot means"), (True, "the same plus the snapshot metrics")):
        loop_seconds, looped = per_row_loop(feed, predictions, min(args.loop_sample, predictions.height), with_metrics)
        slow = looped / loop_seconds
        print(f"per-row loop, {label}: {loop_seconds:.2f} s for {looped:,} predictions → {slow:,.0f} predictions/s "
              f"(≈ {predictions.height / slow:,.0f} s for the full dataset); whole-range vectorized is {fast / slow:,.1f}× faster")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS of this process): {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()

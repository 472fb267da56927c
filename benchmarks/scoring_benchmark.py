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

`--reference-shape --lake-modes assets,batch --steady --cycles 10` prints, in one command, the
issue's figures: a million predictions over 1,667 hour partitions scored through the assets and
through `score_hours` (wall, CPU, peak RSS of a fresh process each) and the steady cycle's stage
medians (wall, plus the cycle's CPU), each with the machine's load average beside it.
"""

import argparse
import bisect
import datetime as dt
import os
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


def build_dataset(
    models: int, days: int, subjects: tuple[str, ...] = ("BTC", "ETH"), hours: int | None = None, start: dt.datetime = START
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    end = start + (dt.timedelta(hours=hours) if hours else dt.timedelta(days=days))
    feed = pl.concat(
        [generate_records(seed=7, subject=s, kind="candle", granularity="1m", start=start - HOUR, end=end + HOUR) for s in subjects]
    )
    rounds = pl.datetime_range(start, end, "1m", closed="left", eager=True, time_zone="UTC")
    inputs = pl.concat(
        [
            pl.DataFrame({"round_ts": rounds}).with_columns(
                pl.lit(subject).alias("subject"),
                pl.lit(f"{subject.lower()}-60s").alias("scope_key"),
                (pl.lit(f"{subject.lower()}-60s@") + pl.col("round_ts").dt.strftime(ROUND_STAMP_FORMAT)).alias("input_id"),
                (pl.col("round_ts") + dt.timedelta(minutes=1)).alias("resolvable_at"),
            )
            for subject in subjects
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


# ---- through the lake: the reference's shape and the steady cycle ------------------------------

REFERENCE_SHAPE = {"models": 10, "subjects": ("BTC",), "hours": 1667}  # ≈ 1,000,200 predictions
# Its 1,667 hours must be over before today: the assets' hourly partitions end at the current hour.
REFERENCE_START = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)
WINDOW_RECORDS = 60  # the default contract's input window: 60 one-minute candles per round


def lake_inputs(inputs: pl.DataFrame) -> pl.DataFrame:
    """The inputs as the `inputs` asset writes them (a 60-candle window per round), so reading
    them costs what it costs in a node's lake."""
    rng = np.random.default_rng(2)
    shape = (inputs.height, WINDOW_RECORDS)
    lists = {f"window_{f}": pl.Series(rng.normal(100, 1, shape)) for f in ("open", "high", "low", "close", "volume")}
    framed = inputs.with_columns(
        pl.lit(60, dtype=pl.Int64).alias("step_seconds"),
        pl.lit(60, dtype=pl.Int64).alias("horizon_seconds"),
        pl.datetime_ranges(pl.col("round_ts") - WINDOW_RECORDS * MINUTE, pl.col("round_ts") - MINUTE, "1m").alias("window_ts"),
        pl.lit(WINDOW_RECORDS, dtype=pl.Int64).alias("record_count"),
        (pl.col("round_ts") - MINUTE).alias("last_record_ts"),
        pl.lit(None, dtype=pl.String).alias("model_input"),
        **lists,
    )
    return schemas.conform(framed.select(schemas.INPUTS.names()), schemas.INPUTS, "inputs")


def write_lake(home: Path, feed: pl.DataFrame, inputs: pl.DataFrame, predictions: pl.DataFrame) -> tuple[str, str]:
    """Feed, inputs and predictions into a lake at `home`, one file per hour; the first and last
    hour keys of the rounds."""
    from coordinator_dagster.lake.store import Lake
    from coordinator_dagster.windows import window_keys_between

    lake = Lake(home)
    lake.write_windows("feed_records", feed, "ts_event", window_keys_between(feed["ts_event"].min(), feed["ts_event"].max() + MINUTE))
    keys = window_keys_between(predictions["round_ts"].min(), predictions["round_ts"].max() + MINUTE)
    lake.write_windows("inputs", lake_inputs(inputs), "round_ts", keys)
    lake.write_windows("predictions", predictions, "round_ts", keys)
    ids = predictions["model_id"].unique().sort()
    lake.write("models", pl.DataFrame({
        "model_id": ids, "name": ids, "cruncher": ids, "cruncher_index": range(ids.len()), "entrypoint": "bench:Model",
        "joined_at": [predictions["round_ts"].min()] * ids.len(), "active": True, "status": "healthy",
    }))
    return keys[0], keys[-1]


def _child(mode: str, *args: str) -> dict:
    """Run one measured step in a fresh interpreter (its own peak RSS, no dataset in memory)."""
    import json
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--child", mode, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"--child {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_main(mode: str, home: str, first: str, last: str, now: str) -> None:
    """`--child assets`: scores + snapshots over [first, last] as one single-run backfill of the
    Dagster assets (in-process `materialize`). `--child batch`: the same through the plain
    function a long-lived engine calls (`coordinator_dagster.scoring_batches`)."""
    import json

    from coordinator_dagster.windows import window_start

    if mode == "assets":
        import dagster as dg

        from assets import default_assets
        from resources import ClockResource, InProcessModelRunner, LakeResource, SyntheticFeed

        resources = {
            "lake": LakeResource(home=home),
            "contract": default_contract(),
            "feed": SyntheticFeed(subjects=["BTC"], seed=7),
            "clock": ClockResource(fixed_now=now),
            "model_runner": InProcessModelRunner(),  # required by the asset graph; unused by scoring
        }
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
        started, cpu = time.perf_counter(), time.process_time()
        dg.materialize(default_assets, selection=["scores", "snapshots"], resources=resources, tags=tags)
    else:
        from coordinator_dagster.lake.store import Lake
        from coordinator_dagster.scoring_batches import score_hours

        contract = default_contract()
        lake = Lake.for_contract(home, contract)
        started, cpu = time.perf_counter(), time.process_time()
        score_hours(lake, contract, window_start(first), window_start(last) + HOUR, dt.datetime.fromisoformat(now), truth_step_seconds=60)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "load": load()}))


def load() -> str:
    """The machine's 1-minute load average now (other processes share its cores)."""
    return f"{os.getloadavg()[0]:.1f}"


def reference_shape(args) -> None:
    """A million predictions over 1,667 hour partitions (10 models, one subject, one-minute
    rounds), scored hour by hour through the domain functions, then through the lake: the assets'
    single-run backfill and the plain batched function, each in a fresh process."""
    import tempfile

    shape = REFERENCE_SHAPE
    t = time.perf_counter()
    feed, inputs, predictions = build_dataset(shape["models"], 0, shape["subjects"], shape["hours"], REFERENCE_START)
    print(f"reference shape: {predictions.height:,} predictions ({shape['models']} models × 1 subject × {shape['hours']:,} hours "
          f"of 1-minute rounds), built in {time.perf_counter() - t:.1f} s")
    if not args.skip_domain:
        seconds, scored, snaps = vectorized(feed, inputs, predictions)
        print(f"domain functions, hour by hour: {seconds:.2f} s ({scored:,} scores, {snaps:,} snapshots)")
        seconds, scored, snaps = vectorized_range(feed, inputs, predictions)
        print(f"domain functions, whole range at once: {seconds:.2f} s ({scored:,} scores, {snaps:,} snapshots)")
    now = (predictions["resolvable_at"].max() + 2 * HOUR).isoformat()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for mode in args.lake_modes.split(","):
            # With --lake the lake is written once and kept: scoring rewrites only scores and
            # snapshots, so later runs (either mode, another checkout) measure the same files.
            home = Path(args.lake) if args.lake else Path(tmp) / mode
            if not (home / "lake" / "predictions").is_dir():
                t = time.perf_counter()
                write_lake(home, feed, inputs, predictions)
                print(f"  lake written in {time.perf_counter() - t:.1f} s at {home}")
            first = REFERENCE_START.strftime("%Y-%m-%d-%H:%M")
            last = (predictions["round_ts"].max()).strftime("%Y-%m-%d-%H:00")
            before = load()
            found = _child(mode, str(home), first, last, now)
            label = {"assets": "through the assets (scores + snapshots, one single-run backfill)",
                     "batch": "through scoring_batches.score_hours (plain function, no Dagster)"}[mode]
            print(f"{label}: {found['seconds']:.2f} s wall ({found['cpu']:.2f} s CPU), peak RSS {found['peak_mb']:,.0f} MB "
                  f"→ {predictions.height / found['seconds']:,.0f} predictions/s; load average {before} before, {found['load']} after")


def steady_cycle(args) -> None:
    """The steady cycle: 99,000 predictions scored (165 hours of 10 models × one subject), then
    `--cycles` times 1,000 new predictions (100 rounds) come due and are scored, with the
    leaderboard and the current checkpoint period's standing rebuilt. `full` reads every
    snapshot hour again each cycle (what the assets do); `incremental` is `ScoringCycle`, which
    reads back only the hours that changed. Both are checked to give the same leaderboard."""
    import tempfile

    from coordinator_dagster.lake.store import Lake
    from coordinator_dagster.scoring_batches import ScoringCycle, build_leaderboard, checkpoint_standing, score_hours

    scored_hours, new_rounds = 165, 100
    contract = default_contract()
    # The data starts two days before a weekly checkpoint period (START is a Sunday), so every
    # cycle's new rounds fall inside the current period, as in a node's steady state.
    data_start = START - dt.timedelta(days=2)
    feed, inputs, predictions = build_dataset(10, 0, ("BTC",), scored_hours + 1 + (args.cycles * new_rounds) // 60, data_start)
    rounds = predictions["round_ts"].unique().sort()
    first_new = data_start + scored_hours * HOUR
    period = (START, START + dt.timedelta(days=7))
    assert first_new + args.cycles * new_rounds * MINUTE <= period[1], "the cycles' rounds must stay inside the period"
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        timings: dict[str, dict[str, list[float]]] = {}
        loads: dict[str, list[float]] = {}
        boards = {}
        for mode in ("full", "incremental"):
            home = Path(tmp) / mode
            old = pl.col("round_ts") < first_new
            write_lake(home, feed, inputs.filter(old), predictions.filter(old))
            lake = Lake.for_contract(home, contract)
            score_hours(lake, contract, data_start, first_new, first_new + HOUR, 60)
            cycle = ScoringCycle(lake, contract, 60, period)
            cycle.run(first_new, first_new - HOUR, first_new)  # warm: the engine has run before
            timings[mode] = {}
            done = first_new
            for c in range(args.cycles):
                batch = rounds.filter((rounds >= first_new + c * new_rounds * MINUTE) & (rounds < first_new + (c + 1) * new_rounds * MINUTE))
                new = pl.col("round_ts").is_in(batch.implode())
                hours = sorted({t.replace(minute=0) for t in batch.to_list()})
                # The rounds land as the predict path writes them (not timed): their hours rewritten.
                for name, frame in (("inputs", lake_inputs(inputs.filter(pl.col("round_ts") < batch.max() + MINUTE))), ("predictions", predictions.filter(pl.col("round_ts") < batch.max() + MINUTE))):
                    part = frame.filter(pl.col("round_ts") >= hours[0])
                    lake.write_windows(name, part, "round_ts", [h.strftime("%Y-%m-%d-%H:%M") for h in hours])
                assert predictions.filter(new).height == 1_000
                now = batch.max() + MINUTE
                start, end = min(hours[0], done.replace(minute=0)), hours[-1] + HOUR
                done = now
                t, cpu = time.perf_counter(), time.process_time()
                if mode == "incremental":
                    result = cycle.run(now, start, end)
                    stages = result.seconds
                    boards[mode] = result.leaderboard
                else:
                    stages = {}
                    s = time.perf_counter()
                    score_hours(lake, contract, start, end, now, 60)
                    stages["scores"] = time.perf_counter() - s
                    s = time.perf_counter()
                    boards[mode] = build_leaderboard(lake, contract, now)
                    stages["leaderboard"] = time.perf_counter() - s
                    s = time.perf_counter()
                    checkpoint_standing(contract, lake.read_window("snapshots", *period, column="period_start"), lake.read("models"))
                    stages["checkpoint"] = time.perf_counter() - s
                stages["cycle"] = time.perf_counter() - t
                stages["cycle CPU"] = time.process_time() - cpu
                loads.setdefault(mode, []).append(os.getloadavg()[0])
                for stage, seconds in stages.items():
                    timings[mode].setdefault(stage, []).append(seconds)
        assert boards["full"].equals(boards["incremental"]), "the incremental leaderboard differs from the full rebuild"
    for mode, stages in timings.items():
        parts = ", ".join(f"{stage} {np.median(v) * 1000:.0f} ms" for stage, v in stages.items())
        print(f"steady cycle, {mode} ({args.cycles} cycles of 1,000 new on ≥ 99,000 scored), median: {parts}; "
              f"load average {min(loads[mode]):.1f}–{max(loads[mode]):.1f}")
    print(f"steady cycle: peak RSS of the benchmark process (datasets included) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--loop-sample", type=int, default=30_000)
    parser.add_argument("--reference-shape", action="store_true", help="10 models × 1 subject × 1,667 hours, through the domain functions and the lake")
    parser.add_argument("--lake-modes", default="assets,batch", help="with --reference-shape: assets, batch or both")
    parser.add_argument("--skip-domain", action="store_true", help="with --reference-shape: only the lake paths")
    parser.add_argument("--steady", action="store_true", help="the steady cycle: 1,000 new predictions on 99,000 scored")
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--lake", default=None, help="with --reference-shape: keep the lake here and reuse it on later runs")
    parser.add_argument("--tmp", default=None, help="where the benchmark lakes go (default: the system's temp folder)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(*args.child)
    if args.reference_shape or args.steady:
        print(f"machine: {platform.python_implementation()} {platform.python_version()}, {__import__('os').cpu_count()} cores")
        if args.reference_shape:
            reference_shape(args)
        if args.steady:
            steady_cycle(args)
        return

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

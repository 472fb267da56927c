"""Batched scoring over many hour partitions, and the incremental scoring cycle, give exactly
what per-partition reads and writes and full rebuilds give."""

import datetime as dt
import threading

import numpy as np
import polars as pl
import pytest

from coordinator_dagster.contracts import default_contract
from coordinator_dagster.feeds.synthetic import generate_records
from coordinator_dagster.lake import batches, schemas
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.scoring import merkle
from coordinator_dagster.scoring.scores import score_predictions
from coordinator_dagster.scoring.snapshots import build_snapshots
from coordinator_dagster.scoring_batches import (
    ScoringCycle,
    build_leaderboard,
    checkpoint_standing,
    score_hours,
    snapshot_window,
)
from coordinator_dagster.windows import window_keys_between

START = dt.datetime(2026, 11, 15, tzinfo=dt.timezone.utc)  # a Sunday: a weekly checkpoint period starts
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
PERIOD = (START, START + dt.timedelta(days=7))
MODELS = ["model-a", "model-b", "model-c", "model-d"]


def rounds_of(hours: range) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Inputs and predictions (four models, one-minute BTC rounds) of the hours `hours` after START."""
    rounds = pl.datetime_range(START + hours.start * HOUR, START + hours.stop * HOUR, "1m", closed="left", eager=True, time_zone="UTC")
    inputs = pl.DataFrame({"round_ts": rounds}).with_columns(
        pl.lit("btc-60s").alias("scope_key"),
        pl.lit("BTC").alias("subject"),
        ("btc-60s@" + pl.col("round_ts").dt.strftime("%Y%m%dT%H%M%S")).alias("input_id"),
        (pl.col("round_ts") + MINUTE).alias("resolvable_at"),
    )
    rng = np.random.default_rng(hours.start)
    preds = inputs.join(pl.DataFrame({"model_id": MODELS}), how="cross").with_columns(
        (pl.col("input_id") + "/" + pl.col("model_id")).alias("prediction_id"),
        # model-d fails now and then: failed rows must survive batching too
        pl.when((pl.col("model_id") == "model-d") & (pl.col("round_ts").dt.minute() % 7 == 0)).then(pl.lit("FAILED")).otherwise(pl.lit("PENDING")).alias("status"),
        pl.Series("value", rng.normal(0, 1, inputs.height * len(MODELS))),
        pl.lit('{"value": 1}').alias("output"),
        pl.lit(None, dtype=pl.String).alias("failed_reason"),
        pl.lit(3.0).alias("latency_ms"),
        pl.col("round_ts").alias("predicted_at"),
    )
    full_inputs = inputs.with_columns(
        *[pl.lit(None, dtype=dtype).alias(name) for name, dtype in schemas.INPUTS.items() if name not in inputs.columns]
    )
    return (
        schemas.conform(full_inputs.select(schemas.INPUTS.names()), schemas.INPUTS, "inputs"),
        schemas.conform(preds.select(schemas.PREDICTIONS.names()), schemas.PREDICTIONS, "predictions"),
    )


def keys(first: int, stop: int) -> list[str]:
    return window_keys_between(START + first * HOUR, START + stop * HOUR)


def register_models(lake: Lake) -> None:
    """Registers the four models, healthy since START."""
    lake.write("models", pl.DataFrame({
        "model_id": MODELS, "name": MODELS, "cruncher": MODELS, "cruncher_index": [3, 1, 0, 2], "entrypoint": "m:M",
        "joined_at": [START] * 4, "active": True, "status": "healthy",
    }))


def land(lake: Lake, hours: range) -> None:
    """The rounds of `hours` written as the predict path writes them."""
    inputs, preds = rounds_of(hours)
    lake.write_windows("inputs", inputs, "round_ts", keys(hours.start, hours.stop))
    lake.write_windows("predictions", preds, "round_ts", keys(hours.start, hours.stop))


@pytest.fixture
def lake(tmp_path) -> Lake:
    """A lake with 30 hours of feed and the first 6 hours of rounds, and registered models."""
    lake = Lake.for_contract(tmp_path, default_contract())
    feed = generate_records(seed=7, subject="BTC", kind="candle", granularity="1m", start=START - HOUR, end=START + 30 * HOUR)
    lake.write_windows("feed_records", feed, "ts_event", window_keys_between(START - HOUR, START + 30 * HOUR))
    land(lake, range(0, 6))
    register_models(lake)
    return lake


def test_batched_reads_give_what_partition_reads_give(lake):
    end = START + 8 * HOUR  # two hours without files
    for name in ("predictions", "inputs", "feed_records"):
        assert batches.read_window_files(lake, name, START, end).equals(lake.read_window(name, START, end))
    columns = ["input_id", "round_ts"]
    assert batches.read_window_files(lake, "inputs", START, end, columns).equals(lake.read_window("inputs", START, end).select(columns))
    assert batches.read_window_files(lake, "scores", START, end).equals(schemas.empty(schemas.SCORES))


def test_batched_reads_upgrade_files_written_before_a_column_was_added(lake):
    key = keys(1, 2)[0]
    old = lake.read("inputs", key).drop(schemas.ADDED_COLUMNS["inputs"])
    old.write_parquet(lake.partition_path("inputs", key))  # an hour written by an older node
    end = START + 3 * HOUR
    assert batches.read_window_files(lake, "inputs", START, end).equals(lake.read_window("inputs", START, end))
    assert batches.read_window_files(lake, "inputs", START, end, ["input_id", "model_input"])["model_input"].null_count() == 180


def test_batched_writes_give_what_partition_writes_give(lake, tmp_path, monkeypatch):
    frame = lake.read_window("predictions", START, START + 6 * HOUR)
    other = Lake(tmp_path / "other")
    written = keys(0, 8)  # the two hours without rows are written empty, as write_windows does
    assert batches.write_window_frames(other, "predictions", frame, "round_ts", written) == 8
    for key in written:
        assert other.read("predictions", key).equals(lake.read("predictions", key)) or other.read("predictions", key).is_empty()
        assert other.exists("predictions", key)
    assert other.read("predictions", written[-1]).is_empty()
    # Byte for byte the files `write_windows` puts down, whatever order the rows come in (the
    # batch sorts the whole range once; `write_windows` sorts each file), and whichever column
    # splits the hours (round_ts takes the one-integer sort, another column the general one).
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    monkeypatch.setattr(batches, "HOURS_PER_SORT", 3)  # sorted and written three hours at a time
    for lake_a, lake_b, column in ((tmp_path / "a", tmp_path / "b", "round_ts"), (tmp_path / "c", tmp_path / "d", "predicted_at")):
        Lake(lake_a).write_windows("predictions", shuffled, column, written)
        batches.write_window_frames(Lake(lake_b), "predictions", shuffled, column, written)
        for key in written:
            assert Lake(lake_b).partition_path("predictions", key).read_bytes() == Lake(lake_a).partition_path("predictions", key).read_bytes()
    with pytest.raises(ValueError, match="outside the partitions"):
        batches.write_window_frames(other, "predictions", frame, "round_ts", keys(0, 2))


def test_a_range_scored_in_one_pass_equals_hour_by_hour_scoring(lake):
    contract = default_contract()
    now = START + 7 * HOUR
    scored, snaps = score_hours(lake, contract, START, START + 6 * HOUR, now, 60)
    feed = lake.read_window("feed_records", START - HOUR, START + 8 * HOUR)
    for key, hour in zip(keys(0, 6), range(6), strict=True):
        start = START + hour * HOUR
        preds = lake.read("predictions", key)
        expected = score_predictions(contract, preds, lake.read("inputs", key), feed, now)
        # Hour files of scores are stored sorted by model then round (lake.writes.SORT_COLUMNS).
        assert lake.read("scores", key).equals(expected.sort(["model_id", "round_ts"], maintain_order=True))
        assert lake.read("snapshots", key).equals(build_snapshots(contract, preds, expected, start, start + HOUR))
    assert scored.scores.height == 6 * 60 * 4 - 6 * 9  # every PENDING prediction (model-d fails 9 an hour)
    assert snaps.height == 6 * 4
    # The snapshots asset's own path (reading scores back) writes the same files.
    before = {key: lake.read("snapshots", key) for key in keys(0, 6)}
    snapshot_window(lake, contract, START, START + 6 * HOUR)
    assert all(lake.read("snapshots", key).equals(frame) for key, frame in before.items())


def full_rebuild(lake: Lake, now: dt.datetime):
    contract = default_contract()
    board = build_leaderboard(lake, contract, now)
    standing = checkpoint_standing(contract, lake.read_window("snapshots", *PERIOD, column="period_start"), lake.read("models"))
    return board, standing


def test_the_incremental_cycle_equals_a_full_rebuild_after_every_step(lake):
    contract = default_contract()
    cycle = ScoringCycle(lake, contract, 60, PERIOD)
    first = cycle.run(START + 6 * HOUR, START, START + 6 * HOUR)
    reads_after_first = cycle._period_files.reads
    assert reads_after_first == 6
    roots = []
    for hour in range(6, 12):
        land(lake, range(hour, hour + 1))
        now = START + (hour + 1) * HOUR
        result = cycle.run(now, START + hour * HOUR, now)
        board, standing = full_rebuild(lake, now)
        assert result.leaderboard.equals(board)
        assert result.standing == standing
        roots.append(standing.merkle_root)
    # Each step decoded only the hour it rewrote, not the whole period.
    assert cycle._period_files.reads == reads_after_first + 6
    assert len(set(roots)) == 6 and first.standing.merkle_root not in roots
    # Emission shares sum exactly to 100 % (frac64) whichever way they were built.
    assert sum(r["reward_pct"] for r in result.standing.emission["cruncher_rewards"]) == 1_000_000_000


def test_a_rescored_past_hour_reaches_the_incremental_standing(lake):
    contract = default_contract()
    now = START + 6 * HOUR
    cycle = ScoringCycle(lake, contract, 60, PERIOD)
    before = cycle.run(now, START, now)
    # An operator rewrites hour 2's snapshots (a re-score): the cycle must see the new file.
    key = keys(2, 3)[0]
    is_c = pl.col("model_id") == "model-c"
    changed = lake.read("snapshots", key).with_columns(
        pl.when(is_c).then(pl.lit(5.0)).otherwise(pl.col("value")).alias("value"),
        pl.when(is_c).then(pl.col("prediction_count") + 1).otherwise(pl.col("prediction_count")).alias("prediction_count"),
    )
    lake.write("snapshots", changed, key)
    after = cycle.run(now, START + 5 * HOUR, now)
    board, standing = full_rebuild(lake, now)
    assert after.standing == standing and after.leaderboard.equals(board)
    assert after.standing.merkle_root != before.standing.merkle_root
    assert after.standing.entries[0]["model_id"] == "model-c"


def test_hashing_cycles_then_chaining_them_is_the_checkpoint_tree(lake):
    score_hours(lake, default_contract(), START, START + 6 * HOUR, START + 7 * HOUR, 60)
    rows = lake.read_window("snapshots", START, START + 6 * HOUR)
    per_hour = [merkle.hash_cycles(lake.read("snapshots", key)) for key in reversed(keys(0, 6))]
    tree = merkle.chain_cycles(c for cycles in per_hour for c in cycles)
    assert tree == merkle.build_checkpoint_tree(rows.to_dicts())
    with pytest.raises(ValueError, match="two cycles"):
        merkle.chain_cycles(per_hour[0] + per_hour[0])


def test_the_standing_is_rebuilt_only_when_a_period_file_or_the_models_change(lake):
    contract = default_contract()
    now = START + 6 * HOUR
    cycle = ScoringCycle(lake, contract, 60, PERIOD)
    first = cycle.run(now, START, now).standing
    # Nothing in the period changed: the kept standing itself, no file decoded again.
    reads = cycle._period_files.reads
    assert cycle._period_standing(*PERIOD) is first and cycle._period_files.reads == reads
    # A new registry (model-b's cruncher renamed) changes the entries without any snapshot file.
    models = lake.read("models").with_columns(pl.when(pl.col("model_id") == "model-b").then(pl.lit("bob")).otherwise(pl.col("cruncher")).alias("cruncher"))
    lake.write("models", models)
    again = cycle._period_standing(*PERIOD)
    assert again is not first and again == full_rebuild(lake, now)[1]
    assert {e["cruncher"] for e in again.entries} == {"model-a", "bob", "model-c", "model-d"}
    # Hours after the period: the period's standing is kept as it was, and still equals a rebuild.
    later = PERIOD[1] + 2 * HOUR
    assert cycle.run(later, PERIOD[1], later).standing is again
    assert again == full_rebuild(lake, later)[1]


def test_batched_reads_see_each_hour_whole_while_it_is_rewritten(lake):
    # A writer keeps replacing every hour of predictions with one of two versions (all values 1.0
    # with every model, or all 2.0 without model-d); each batched read must give every hour
    # entirely as one version: never an error, never rows of both.
    end = START + 6 * HOUR
    base = lake.read_window("predictions", START, end)
    versions = {1.0: base.with_columns(pl.lit(1.0).alias("value")), 2.0: base.filter(pl.col("model_id") != "model-d").with_columns(pl.lit(2.0).alias("value"))}
    rows_of = {1.0: 240, 2.0: 180}
    batches.write_window_frames(lake, "predictions", versions[1.0], "round_ts", keys(0, 6))
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            for frame in versions.values():
                batches.write_window_frames(lake, "predictions", frame, "round_ts", keys(0, 6))

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        for _ in range(40):
            read = batches.read_window_files(lake, "predictions", START, end, ["round_ts", "value"])
            per_hour = read.group_by(pl.col("round_ts").dt.truncate("1h")).agg(pl.col("value").unique(), pl.len())
            assert per_hour.height == 6
            for values, count in zip(per_hour["value"].to_list(), per_hour["len"].to_list(), strict=True):
                assert len(values) == 1 and count == rows_of[values[0]]
    finally:
        stop.set()
        writer.join()

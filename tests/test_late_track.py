"""The late track: LATE answers are scored by the contract's scoring function into `late_scores`,
served per model at `GET /reports/leaderboard/late`, and change nothing on the main track (scores,
snapshots, leaderboard, checkpoint entries, emission, Merkle root)."""

import datetime as dt

import httpx
import numpy as np
import polars as pl
import pytest

from api.app import create_app
from api.settings import ApiSettings
from coordinator_dagster.contracts import default_contract
from coordinator_dagster.feeds.synthetic import generate_records
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.scoring.late_track import late_summary
from coordinator_dagster.scoring.scores import score_predictions
from coordinator_dagster.scoring_batches import build_leaderboard, checkpoint_standing, score_hours
from coordinator_dagster.statuses import PredictionStatus
from coordinator_dagster.windows import window_keys_between
from tests.api_fixtures import serve
from tests.test_scoring_batches import HOUR, MODELS, PERIOD, START, keys, rounds_of

LATE_HOUR = 6  # the node restarted: every round of hour 6 was asked 90 s after its time
LATENESS = dt.timedelta(seconds=90)
NOW = START + 8 * HOUR


def build(home, with_late: bool) -> Lake:
    """Six hours answered in time by four models; in hour 6 model-a's answers are LATE (with
    `with_late`) or absent from the lake (without), and model-b answers it in time."""
    lake = Lake.for_contract(home, default_contract())
    feed = generate_records(seed=7, subject="BTC", kind="candle", granularity="1m", start=START - HOUR, end=START + 30 * HOUR)
    lake.write_windows("feed_records", feed, "ts_event", window_keys_between(START - HOUR, START + 30 * HOUR))
    inputs, preds = rounds_of(range(0, LATE_HOUR + 1))
    is_late = (pl.col("round_ts") >= START + LATE_HOUR * HOUR) & (pl.col("model_id") == "model-a")
    late = pl.lit(PredictionStatus.LATE.value)
    preds = preds.filter(~(pl.col("round_ts") >= START + LATE_HOUR * HOUR) | pl.col("model_id").is_in(["model-a", "model-b"]))
    preds = preds.with_columns(
        pl.when(is_late).then(late).otherwise(pl.col("status")).alias("status"),
        pl.when(is_late).then(pl.col("round_ts") + LATENESS).otherwise(pl.col("predicted_at")).alias("predicted_at"),
    )
    if not with_late:
        preds = preds.filter(~is_late)
    lake.write_windows("inputs", inputs, "round_ts", keys(0, LATE_HOUR + 1))
    lake.write_windows("predictions", preds, "round_ts", keys(0, LATE_HOUR + 1))
    lake.write("models", pl.DataFrame({
        "model_id": MODELS, "name": MODELS, "cruncher": MODELS, "cruncher_index": [3, 1, 0, 2], "entrypoint": "m:M",
        "joined_at": [START] * 4, "active": True, "status": "healthy",
    }))
    contract = default_contract()
    score_hours(lake, contract, START, START + (LATE_HOUR + 1) * HOUR, NOW, 60)
    build_leaderboard(lake, contract, NOW)
    return lake


def standing(lake: Lake):
    return checkpoint_standing(default_contract(), lake.read_window("snapshots", *PERIOD, column="period_start"), lake.read("models"))


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    return build(tmp_path_factory.mktemp("with"), True), build(tmp_path_factory.mktemp("without"), False)


def test_late_answers_are_scored_on_their_own_track_and_leave_the_main_track_byte_identical(lakes):
    with_late, without = lakes
    for key in keys(0, LATE_HOUR + 1):
        for table in ("scores", "snapshots"):
            assert with_late.read(table, key).equals(without.read(table, key)), (table, key)
    assert with_late.read("leaderboard").equals(without.read("leaderboard"))
    assert standing(with_late) == standing(without)  # entries, emission and Merkle root

    # Only the hour holding LATE answers has a late_scores file, and only model-a is in it.
    late_key = keys(LATE_HOUR, LATE_HOUR + 1)[0]
    assert [k for k in keys(0, LATE_HOUR + 1) if with_late.exists("late_scores", k)] == [late_key]
    assert not any(without.exists("late_scores", k) for k in keys(0, LATE_HOUR + 1))
    late_scores = with_late.read("late_scores", late_key)
    assert set(late_scores["model_id"]) == {"model-a"} and late_scores.height == 60
    # The same scoring function: each late score is what that answer would have scored in time,
    # and with the default function that is sign(prediction) x the round's return.
    preds = with_late.read("predictions", late_key).filter(pl.col("model_id") == "model-a")
    in_time = score_predictions(default_contract(), preds.with_columns(pl.lit("PENDING").alias("status")), with_late.read("inputs", late_key), with_late.read_window("feed_records", START, NOW), NOW)
    assert late_scores.sort("prediction_id")["value"].to_list() == in_time.sort("prediction_id")["value"].to_list()
    expected = np.sign(late_scores["prediction_value"].to_numpy()) * (late_scores["resolved_price"] - late_scores["entry_price"]).to_numpy() / late_scores["entry_price"].abs().to_numpy()
    assert late_scores["value"].to_list() == pytest.approx(expected.tolist(), rel=1e-12)
    # model-b answered hour 6 in time: it is on the main track, not the late one.
    assert with_late.read("scores", late_key).filter(pl.col("model_id") == "model-b").height == 60


def test_the_late_summary_per_model(lakes):
    with_late, _ = lakes
    late_key = keys(LATE_HOUR, LATE_HOUR + 1)[0]
    preds = with_late.read("predictions", late_key).filter(pl.col("status") == "LATE")
    scores = with_late.read("late_scores", late_key)
    [row] = late_summary(preds, scores).to_dicts()
    assert row["model_id"] == "model-a" and row["late_prediction_count"] == 60 and row["scored_count"] == 60
    assert row["mean_lateness_seconds"] == 90.0
    assert row["mean_late_score"] == pytest.approx(float(np.mean(scores["value"].to_numpy())), rel=1e-12)
    # One answer not scored yet (no late score row): counted, not in the mean.
    partial = late_summary(preds, scores.filter(pl.col("prediction_id") != scores["prediction_id"][0]))
    assert partial["late_prediction_count"][0] == 60 and partial["scored_count"][0] == 59
    assert late_summary(preds.clear(), scores).is_empty()


@pytest.mark.process
def test_the_late_track_route_under_uvicorn(lakes):
    with_late, without = lakes
    late_key = keys(LATE_HOUR, LATE_HOUR + 1)[0]
    expected = late_summary(with_late.read("predictions", late_key).filter(pl.col("status") == "LATE"), with_late.read("late_scores", late_key)).to_dicts()
    with serve(create_app(ApiSettings(home=with_late.home))) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        response = client.get("/reports/leaderboard/late")
        assert response.status_code == 200, response.text
        [entry] = response.json()
        assert entry == pytest.approx(expected[0]) and entry["model_id"] == "model-a"
        # The main leaderboard does not carry the late track.
        assert "late_prediction_count" not in client.get("/reports/leaderboard").json()[0]
    with serve(create_app(ApiSettings(home=without.home))) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        assert client.get("/reports/leaderboard/late").json() == []

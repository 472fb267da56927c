"""Round scheduling as plain functions: what is due, the cursor and the run keys, without Dagster."""

import datetime as dt
import json

import polars as pl

from coordinator_dagster.contracts import default_contract
from coordinator_dagster.feeds.synthetic import generate_records
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG
from coordinator_dagster.partitions import window_keys_between
from coordinator_dagster.round_schedule import plan_predict_runs, plan_score_runs
from tests.conftest import HOUR

CONTRACT = default_contract()
STEP = 60


def land(lake: Lake, start: dt.datetime, end: dt.datetime, subjects=("BTC", "ETH")) -> None:
    """Candles of [start, end) for `subjects`, as the feed_records asset stores them."""
    frame = pl.concat(
        [generate_records(seed=7, subject=s, kind="candle", granularity="1m", start=start, end=end) for s in subjects]
    ).sort("subject", "ts_event")
    keys = window_keys_between(start, end)
    lake.write_windows("feed_records", frame, "ts_event", keys)


def test_a_round_waits_for_the_candle_that_closes_at_it(lake):
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    land(lake, HOUR, HOUR + dt.timedelta(minutes=19))  # the 10:19 candle (closing at 10:20) is missing
    plan = plan_predict_runs(CONTRACT, lake, STEP, now, None)
    assert plan.runs == [] and plan.cursor is None
    assert plan.skip_reason == (
        "btc-60s: round 2026-11-20T10:20:00Z waits for BTC data at 2026-11-20T10:19:00Z; "
        "eth-60s: round 2026-11-20T10:20:00Z waits for ETH data at 2026-11-20T10:19:00Z"
    )


def test_a_due_round_is_requested_once_under_a_deterministic_key(lake):
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    land(lake, HOUR, HOUR + dt.timedelta(minutes=20))
    plan = plan_predict_runs(CONTRACT, lake, STEP, now, None)
    [run] = plan.runs
    assert (run.run_key, run.partition_key) == ("predict:2026-11-20T10:20:00Z", "2026-11-20-10:00")
    assert run.tags == {LIVE_ROUND_TAG: "2026-11-20T10:20:00Z", "coordinator/scopes": "btc-60s,eth-60s"}
    assert json.loads(plan.cursor) == {"btc-60s": "2026-11-20T10:20:00Z", "eth-60s": "2026-11-20T10:20:00Z"}
    again = plan_predict_runs(CONTRACT, lake, STEP, now, plan.cursor)
    assert again.runs == [] and again.skip_reason == "no new round to predict yet"


def test_after_a_gap_across_hours_the_earlier_hours_are_caught_up(lake):
    """The node predicted 08:30 last and comes back at 10:20: the live round goes first, then the
    hours 08:00 and 09:00, tagged with the live round so their missed rounds are recorded ABSENT."""
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    land(lake, HOUR, HOUR + dt.timedelta(minutes=20))
    cursor = json.dumps({"btc-60s": "2026-11-20T08:30:00Z", "eth-60s": "2026-11-20T08:30:00Z"})
    plan = plan_predict_runs(CONTRACT, lake, STEP, now, cursor)
    assert [(r.run_key, r.partition_key) for r in plan.runs] == [
        ("predict:2026-11-20T10:20:00Z", "2026-11-20-10:00"),
        ("predict-catch-up:2026-11-20T08:00:00Z", "2026-11-20-08:00"),
        ("predict-catch-up:2026-11-20T09:00:00Z", "2026-11-20-09:00"),
    ]
    assert {r.tags[LIVE_ROUND_TAG] for r in plan.runs} == {"2026-11-20T10:20:00Z"}


def test_scoring_yields_to_the_live_rounds_predictions_only_while_predicting_live(lake):
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    land(lake, HOUR - dt.timedelta(hours=1), HOUR + dt.timedelta(minutes=20))
    held = plan_score_runs(CONTRACT, lake, STEP, now, None, predicting_live=True)
    assert held.runs == []
    assert held.skip_reason.startswith("scoring waits for the live round's predictions first: btc-60s: round 2026-11-20T10:20:00Z")
    plan = plan_score_runs(CONTRACT, lake, STEP, now, None, predicting_live=False)
    # Round 10:19 resolves at 10:20: the candle closing then (it opened at 10:19) has landed.
    assert [r.run_key for r in plan.runs if r.run_key.startswith("score:")] == ["score:2026-11-20T10:19:00Z"]


def test_a_round_is_scored_once_the_candle_closing_at_its_resolvable_time_lands(lake):
    """Round 10:10 with a 60 s horizon resolves at 10:11. Its truth is the close of the candle
    that opened at 10:10; the candle opening at 10:11 is not needed."""
    land(lake, HOUR - dt.timedelta(hours=1), HOUR + dt.timedelta(minutes=10))  # up to the 10:09 candle
    now = HOUR + dt.timedelta(minutes=11, seconds=1)
    scored = json.dumps({"btc-60s": "2026-11-20T10:09:00Z", "eth-60s": "2026-11-20T10:09:00Z"})
    waiting = plan_score_runs(CONTRACT, lake, STEP, now, scored)
    assert [r.run_key for r in waiting.runs if r.run_key.startswith("score:")] == []
    assert "btc-60s: round 2026-11-20T10:10:00Z waits for truth data at 2026-11-20T10:11:00Z" in waiting.waiting
    # Round 10:09 not scored yet: its truth (the 10:09 candle, closing at 10:10) has landed, so it
    # does not wait with 10:10.
    earlier = plan_score_runs(CONTRACT, lake, STEP, now, None)
    assert [r.run_key for r in earlier.runs if r.run_key.startswith("score:")] == ["score:2026-11-20T10:09:00Z"]
    land(lake, HOUR - dt.timedelta(hours=1), HOUR + dt.timedelta(minutes=11))  # the 10:10 candle lands
    plan = plan_score_runs(CONTRACT, lake, STEP, now, scored)
    assert [r.run_key for r in plan.runs if r.run_key.startswith("score:")] == ["score:2026-11-20T10:10:00Z"]


def test_one_second_rounds_are_scored_up_to_the_newest_tick_landed(lake):
    """One-second rounds with a one-second horizon on one-second ticks: the tick at T + 1 s lands
    as second T + 1 closes, so the newest due round (now - 1 s) always still waits for its truth;
    the rounds before it whose truth has landed are scored rather than held with it."""
    from coordinator_dagster.contracts import CrunchContract
    from coordinator_dagster.domain_types import PredictionScope, ScheduledPrediction
    from coordinator_dagster.round_schedule import CLOSED_KEY, due_score_rounds

    contract = CrunchContract(
        scheduled_predictions=[
            ScheduledPrediction(
                scope_key="btc-1s", scope=PredictionScope(subject="BTC", step_seconds=1, horizon_seconds=1),
                prediction_interval_seconds=1, resolve_horizon_seconds=1,
            )
        ]
    )
    newest = HOUR + dt.timedelta(minutes=10, seconds=29)
    ticks = generate_records(seed=7, subject="BTC", kind="tick", granularity="1s", start=HOUR - dt.timedelta(minutes=1), end=newest + dt.timedelta(seconds=1))
    lake.write_windows("feed_records", ticks, "ts_event", window_keys_between(HOUR - dt.timedelta(hours=1), newest))
    now = newest + dt.timedelta(seconds=1, milliseconds=100)  # the 10:10:29 tick landed as 10:10:30 began
    requests, cursor, waiting = due_score_rounds(contract, lake, 1, now, {"btc-1s": "2026-11-20T10:10:20Z", CLOSED_KEY: "2026-11-20T08:00:00Z"})
    # Round 10:10:28 resolves at 10:10:29, the newest tick: it and the rounds before it since the
    # cursor are scored by this pass (the newest due round, 10:10:29, waits for 10:10:30).
    assert list(requests) == [HOUR + dt.timedelta(minutes=10, seconds=28)] and cursor["btc-1s"] == "2026-11-20T10:10:28Z"
    assert "btc-1s: round 2026-11-20T10:10:29Z waits for truth data at 2026-11-20T10:10:30Z" in waiting
    # Scored up to 10:10:28 already: nothing more until the next tick lands.
    assert due_score_rounds(contract, lake, 1, now, cursor)[0] == {}


def test_a_feed_that_cannot_serve_the_rounds_stops_the_start(tmp_path, monkeypatch, capsys):
    from coordinator_dagster.cli.main import main
    from coordinator_dagster.contracts import default_contract
    from coordinator_dagster.round_schedule import feed_mismatches

    assert feed_mismatches(default_contract(), ["BTC", "ETH"], 60) == feed_mismatches(default_contract(), ["BTC", "ETH"], 1) == []
    # A 15 s schedule on one-minute candles would wait forever on the rounds between candles.
    assert feed_mismatches(default_contract(), ["BTC"], 120) == [
        "scope btc-60s: every 60 s, horizon 60 s: FEED_GRANULARITY of 120 s does not divide both (rounds need the record that closes at their time)",
        "scope eth-60s: subject ETH is not in FEED_SUBJECTS (BTC)",
        "scope eth-60s: every 60 s, horizon 60 s: FEED_GRANULARITY of 120 s does not divide both (rounds need the record that closes at their time)",
    ]
    for name in ("CRUNCH_CONFIG_MODULE", "MODELS_MANIFEST", "PARTITIONS_START"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COORDINATOR_HOME", str(tmp_path))
    monkeypatch.setenv("FEED_SUBJECTS", "BTCUSDT")
    assert main(["check-settings"]) == 2
    assert "subject BTC is not in FEED_SUBJECTS (BTCUSDT)" in capsys.readouterr().err

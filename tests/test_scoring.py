"""Ground truth and scoring over whole partitions, against the row-wise reference rules."""

import datetime as dt
import json

import polars as pl
import pytest

from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.callables import vectorized_twin
from coordinator_dagster.contracts import CrunchContract, ScoreResult
from coordinator_dagster.scoring.scores import (
    default_resolve_ground_truth,
    default_scoring_function,
    resolve_truth,
    score_predictions,
    truth_window,
)

T0 = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
MIN = dt.timedelta(minutes=1)


def feed(closes, start=T0, subject="BTC"):
    n = len(closes)
    return pl.DataFrame(
        {
            "source": "synthetic", "subject": subject, "kind": "candle", "granularity": "1m",
            "ts_event": [start + i * MIN for i in range(n)],
            "open": closes, "high": closes, "low": closes, "close": closes, "volume": 1.0, "price": closes,
        },
        schema=schemas.FEED_RECORDS,
    )


def inputs_for(rounds, subject="BTC", horizon=MIN):
    return pl.DataFrame(
        [
            {
                "input_id": f"{subject}@{r:%H%M}", "scope_key": subject.lower(), "subject": subject, "round_ts": r,
                "resolvable_at": r + horizon, "step_seconds": 60, "horizon_seconds": int(horizon.total_seconds()),
                "window_ts": [], "window_close": [], "record_count": 0, "last_record_ts": r,
            }
            for r in rounds
        ],
        schema=schemas.INPUTS,
    )


def predictions_for(inputs, models):
    rows = []
    for item in inputs.iter_rows(named=True):
        for model_id, value in models.items():
            rows.append(
                {
                    "prediction_id": f"{item['input_id']}/{model_id}", "input_id": item["input_id"],
                    "scope_key": item["scope_key"], "subject": item["subject"], "model_id": model_id,
                    "round_ts": item["round_ts"], "resolvable_at": item["resolvable_at"],
                    "status": "PENDING" if value is not None else "FAILED", "value": value,
                    "output": json.dumps({"value": value}) if value is not None else None,
                    "failed_reason": None if value is not None else "model raised", "latency_ms": 1.0,
                    "predicted_at": item["round_ts"],
                }
            )
    return pl.DataFrame(rows, schema=schemas.PREDICTIONS)


# A feed in which every minute moves by a different known amount: during minute m (counted from
# T0) the price rises by m + 1 every second, so the price at second t of minute m is
# 1000 + 30·m·(m + 1) + (m + 1)·t and the move over minute m is 60·(m + 1).
def price_at(seconds: int) -> float:
    minute, second = divmod(seconds, 60)
    return 1000.0 + 30 * minute * (minute + 1) + (minute + 1) * second


def stepped_feed(kind: str, granularity: str, minutes: int = 20) -> pl.DataFrame:
    step = {"1s": 1, "1m": 60}[granularity]
    times = range(0, minutes * 60, step)
    if kind == "candle":  # keyed by open time: opens at price_at(t), closes at price_at(t + step)
        opens, closes = [price_at(t) for t in times], [price_at(t + step) for t in times]
    else:
        opens, closes = [None] * len(times), [price_at(t) for t in times]
    return pl.DataFrame(
        {
            "source": "synthetic", "subject": "BTC", "kind": kind, "granularity": granularity,
            "ts_event": [T0 + dt.timedelta(seconds=t) for t in times],
            "open": opens, "high": closes, "low": closes, "close": closes, "volume": 1.0,
            "price": [None if kind == "candle" else c for c in closes],
        },
        schema=schemas.FEED_RECORDS,
    )


def row_wise(records, input):  # no vectorized twin: the engine runs it row by row
    return default_resolve_ground_truth(records, input)


FEEDS = [("candle", "1m"), ("candle", "1s"), ("tick", "1m"), ("tick", "1s")]


@pytest.mark.parametrize(("kind", "granularity"), FEEDS)
@pytest.mark.parametrize("contract", [CrunchContract(), CrunchContract(resolve_ground_truth=row_wise)], ids=["vectorized", "row-wise"])
def test_truth_is_the_price_at_the_round_to_the_price_one_horizon_later(kind, granularity, contract):
    # Round 10:10 with a 60 s horizon: the models saw prices up to 10:10; the move they predicted
    # is minute 10's, 1000 + 30·10·11 = 4300 → 1000 + 30·11·12 = 4960. (For 1m candles: the close
    # of the 10:09 candle → the close of the 10:10 candle; the rule before this one measured minute
    # 11's move, 4960 → 5680, a move no model could have seen coming from its input.)
    rounds = [T0 + 10 * MIN, T0 + 15 * MIN]
    truth = resolve_truth(contract, stepped_feed(kind, granularity), inputs_for(rounds)).sort("input_id")
    assert truth["truth_state"].to_list() == ["resolved", "resolved"]
    assert truth["entry_price"].to_list() == [4300.0, 8200.0]
    assert truth["resolved_price"].to_list() == [4960.0, 9160.0]
    assert truth["profit"].to_list() == [660 / 4300, 960 / 8200]
    assert truth["direction_up"].to_list() == [True, True]


@pytest.mark.parametrize(("kind", "granularity"), FEEDS)
def test_truth_over_a_five_minute_horizon(kind, granularity):
    # Round 10:10, horizon 300 s: 4300 → the price at 10:15, 1000 + 30·15·16 = 8200.
    truth = resolve_truth(CrunchContract(), stepped_feed(kind, granularity), inputs_for([T0 + 10 * MIN], horizon=5 * MIN))
    assert truth.select("entry_price", "resolved_price", "profit").row(0) == (4300.0, 8200.0, 3900 / 4300)


def test_a_ticks_truth_is_the_last_tick_at_or_before_each_instant():
    # Ticks every 7 s from 10:00:00: the newest tick at or before 10:10 is at 10:09:55, the newest
    # at or before 10:11 at 10:10:58 (2 s old: 3 % of the horizon, not stale).
    ticks = stepped_feed("tick", "1s").filter(pl.col("ts_event").dt.epoch("s") % 7 == T0.timestamp() % 7)
    truth = resolve_truth(CrunchContract(), ticks, inputs_for([T0 + 10 * MIN])).row(0, named=True)
    assert (truth["entry_price"], truth["resolved_price"]) == (price_at(595), price_at(658))
    assert (truth["entry_price"], truth["resolved_price"]) == (4300.0 - 5 * 10, 4300.0 + 58 * 11)


def test_without_the_candle_closing_at_the_round_the_entry_is_the_open_of_the_candle_opening_there():
    candles = stepped_feed("candle", "1m").filter(pl.col("ts_event") != T0 + 9 * MIN).with_columns(
        pl.when(pl.col("ts_event") == T0 + 10 * MIN).then(4301.0).otherwise(pl.col("open")).alias("open")
    )
    for contract in (CrunchContract(), CrunchContract(resolve_ground_truth=row_wise)):
        truth = resolve_truth(contract, candles, inputs_for([T0 + 10 * MIN])).row(0, named=True)
        assert (truth["entry_price"], truth["resolved_price"]) == (4301.0, 4960.0)


def test_a_reference_style_rule_measures_the_right_move_on_the_window_it_receives():
    # Custom row-wise callables get the candle closing at T first and the one closing at T + H
    # last, so "first close → last close" (the reference engine's rule) measures minute 10's move.
    def first_to_last(records, input):
        entry, resolved = records[0]["close"], records[-1]["close"]
        return {"entry_price": entry, "resolved_price": resolved, "profit": resolved / entry - 1, "direction_up": resolved > entry}

    truth = resolve_truth(CrunchContract(resolve_ground_truth=first_to_last), stepped_feed("candle", "1m"), inputs_for([T0 + 10 * MIN]))
    assert truth.select("entry_price", "resolved_price").row(0) == (4300.0, 4960.0)
    window = truth_window(stepped_feed("candle", "1m"), T0 + 10 * MIN, T0 + 11 * MIN)
    assert [r["ts_event"] for r in window] == [T0 + 9 * MIN, T0 + 10 * MIN]


def test_truth_waits_without_records_and_on_stale_data():
    contract = CrunchContract()
    assert resolve_truth(contract, feed([]), inputs_for([T0]))["truth_state"].to_list() == ["pending"]
    # Only the candle closing at the round exists: no price is known after the round yet.
    assert resolve_truth(contract, feed([100.0], start=T0 - MIN), inputs_for([T0]))["truth_state"].to_list() == ["pending"]
    # Zero entry price cannot give a return.
    assert resolve_truth(contract, feed([0.0, 1.0], start=T0 - MIN), inputs_for([T0]))["truth_state"].to_list() == ["pending"]
    # A 5-minute horizon whose newest candle closes at T + 3 min: 120 s old > 20 % of 300 s.
    stale = resolve_truth(contract, feed([100.0, 101.0, 102.0, 103.0], start=T0 - MIN), inputs_for([T0], horizon=5 * MIN))
    assert stale["truth_state"].to_list() == ["stale"]


def test_staleness_follows_the_configured_fraction():
    # A 5-minute horizon with candles closing every minute up to 4 minutes in: 60 s late = 20 % of 300 s.
    inputs = inputs_for([T0], horizon=5 * MIN)
    records = feed([100.0, 101.0, 102.0, 103.0, 104.0], start=T0 - MIN)
    assert resolve_truth(CrunchContract(), records, inputs)["truth_state"][0] == "resolved"
    strict = CrunchContract(max_ground_truth_staleness_fraction=0.1)
    assert resolve_truth(strict, records, inputs)["truth_state"][0] == "stale"


@pytest.mark.parametrize("contract_kwargs", [{}, {"resolve_ground_truth": row_wise}], ids=["vectorized", "row-wise"])
def test_a_staleness_fraction_of_zero_turns_the_guard_off(contract_kwargs):
    # 5-minute horizon, newest candle closing at T + 3 min (120 s old): stale at 0.2, while 0
    # (the reference's meaning: no guard) resolves it with the newest price, 100 → 102.
    records = feed([100.0, 101.0, 102.0], start=T0 - MIN)
    inputs = inputs_for([T0], horizon=5 * MIN)
    # (A row-wise callable answers None for "not yet", so the engine cannot tell stale from pending.)
    assert resolve_truth(CrunchContract(**contract_kwargs), records, inputs)["truth_state"][0] in ("stale", "pending")
    off = resolve_truth(CrunchContract(max_ground_truth_staleness_fraction=0, **contract_kwargs), records, inputs)
    assert off.select("truth_state", "entry_price", "resolved_price").row(0) == ("resolved", 100.0, 102.0)


def test_nothing_is_scored_before_its_resolvable_time():
    # Without the staleness guard the feed already holds a price after the round; the move is
    # not over until T + horizon, so the prediction stays PENDING until then.
    contract = CrunchContract(max_ground_truth_staleness_fraction=0)
    inputs = inputs_for([T0], horizon=5 * MIN)
    preds = predictions_for(inputs, {"m": 1.0})
    records = feed([100.0, 101.0, 102.0], start=T0 - MIN)
    assert score_predictions(contract, preds, inputs, records, T0 + 4 * MIN).is_empty()
    [scored] = score_predictions(contract, preds, inputs, records, T0 + 5 * MIN).iter_rows(named=True)
    assert scored["value"] == pytest.approx(0.02)


def test_vectorized_truth_matches_the_row_wise_rule():
    closes = [100.0 + (i * 7919 % 13) - 6 for i in range(90)]
    records = feed(closes)
    rounds = [T0 + i * MIN for i in range(0, 95, 3)]
    inputs = inputs_for(rounds)
    frame = vectorized_twin(default_resolve_ground_truth)(records, inputs, 0.2)
    for item in inputs.iter_rows(named=True):
        window = truth_window(records, item["round_ts"], item["resolvable_at"])
        expected = default_resolve_ground_truth(window, item)
        got = frame.filter(pl.col("input_id") == item["input_id"]).row(0, named=True)
        if expected is None:
            assert got["truth_state"] != "resolved"
        else:
            assert got["truth_state"] == "resolved"
            assert got["profit"] == pytest.approx(expected["profit"])
            assert got["direction_up"] == expected["direction_up"]


def test_default_score_is_the_directional_return():
    assert default_scoring_function({"value": 3.0}, {"profit": 0.02}).value == pytest.approx(0.02)
    assert default_scoring_function({"value": -0.1}, {"profit": 0.02}).value == pytest.approx(-0.02)
    assert default_scoring_function({"value": 0.0}, {"profit": 0.02}).value == 0.0


def test_score_predictions_scores_pending_only_and_matches_row_wise():
    records = feed([100.0, 102.0, 101.0, 104.0], start=T0 - MIN)
    inputs = inputs_for([T0, T0 + MIN, T0 + 2 * MIN])
    preds = predictions_for(inputs, {"up": 1.0, "down": -2.0, "broken": None})
    now = T0 + dt.timedelta(minutes=5)
    vector = score_predictions(CrunchContract(), preds, inputs, records, now)
    assert vector.schema == schemas.SCORES
    assert set(vector["model_id"]) == {"up", "down"}  # FAILED predictions are never scored
    by_id = {r["prediction_id"]: r for r in vector.iter_rows(named=True)}
    assert by_id[f"BTC@1000/up"]["value"] == pytest.approx(0.02)
    assert by_id[f"BTC@1000/down"]["value"] == pytest.approx(-0.02)

    def plain(prediction, ground_truth):  # no vectorized twin: runs row by row
        return default_scoring_function(prediction, ground_truth)

    rows = score_predictions(CrunchContract(scoring_function=plain), preds, inputs, records, now)
    assert rows.select("prediction_id", "value", "success").equals(vector.select("prediction_id", "value", "success"))


def test_a_scoring_function_that_raises_fails_only_its_row():
    def fragile(prediction, ground_truth):
        if prediction["value"] < 0:
            raise ZeroDivisionError("bad row")
        return ScoreResult(value=1.0)

    records = feed([100.0, 102.0, 101.0], start=T0 - MIN)
    inputs = inputs_for([T0, T0 + MIN])
    preds = predictions_for(inputs, {"up": 1.0, "down": -1.0})
    out = score_predictions(CrunchContract(scoring_function=fragile), preds, inputs, records, T0 + dt.timedelta(minutes=5))
    ok = out.filter(pl.col("model_id") == "up")
    bad = out.filter(pl.col("model_id") == "down")
    assert ok["success"].to_list() == [True, True] and ok["value"].to_list() == [1.0, 1.0]
    assert bad["success"].to_list() == [False, False]
    assert all("ZeroDivisionError" in reason for reason in bad["failed_reason"])


def test_garbage_from_a_scoring_function_fails_the_row():
    out = score_predictions(
        CrunchContract(scoring_function=lambda prediction, ground_truth: {"value": float("inf")}),
        predictions_for(inputs_for([T0]), {"m": 1.0}),
        inputs_for([T0]),
        feed([1.0, 2.0], start=T0 - MIN),
        T0 + dt.timedelta(minutes=5),
    )
    assert out["success"].to_list() == [False]
    assert "not finite" in out["failed_reason"][0]


def test_unresolvable_predictions_are_closed_after_the_grace_period():
    contract = CrunchContract(ground_truth_grace_seconds=600)
    inputs = inputs_for([T0])
    preds = predictions_for(inputs, {"m": 1.0})
    records = feed([100.0], start=T0 - MIN)  # truth never arrives
    waiting = score_predictions(contract, preds, inputs, records, T0 + dt.timedelta(minutes=5))
    assert waiting.is_empty()  # still PENDING inside the grace period
    closed = score_predictions(contract, preds, inputs, records, T0 + dt.timedelta(minutes=12))
    assert closed["success"].to_list() == [False]
    assert "ground truth unavailable (pending)" in closed["failed_reason"][0]
    assert closed["value"].to_list() == [None]


def test_custom_row_wise_truth_that_raises_fails_its_inputs_only():
    def truth(records, input):
        if input["round_ts"] == T0:
            raise RuntimeError("feed glitch")
        return default_resolve_ground_truth(records, input)

    contract = CrunchContract(resolve_ground_truth=truth, ground_truth_grace_seconds=60)
    inputs = inputs_for([T0, T0 + MIN])
    preds = predictions_for(inputs, {"m": 1.0})
    out = score_predictions(contract, preds, inputs, feed([100.0, 101.0, 103.0], start=T0 - MIN), T0 + dt.timedelta(minutes=10))
    by_round = {r["round_ts"]: r for r in out.iter_rows(named=True)}
    assert by_round[T0]["success"] is False and "feed glitch" in by_round[T0]["failed_reason"]
    assert by_round[T0 + MIN]["success"] is True


@pytest.mark.parametrize(("kind", "granularity"), [("candle", "1m"), ("candle", "1s")])
def test_the_entry_is_the_last_price_the_models_saw_and_the_resolved_price_the_next_rounds(kind, granularity):
    from coordinator_dagster.contracts import default_contract
    from coordinator_dagster.feeds.synthetic import generate_records
    from coordinator_dagster.models.rounds import build_inputs

    contract = default_contract()
    records = generate_records(seed=3, subject="BTC", kind=kind, granularity=granularity, start=T0 - MIN * 60, end=T0 + MIN * 61)
    inputs = build_inputs(records, contract.scheduled_predictions, T0, T0 + MIN * 60, T0 + MIN * 90, {"1m": 60, "1s": 1}[granularity], 60 * {"1m": 60, "1s": 1}[granularity])
    truth = resolve_truth(contract, records, inputs).join(inputs, on="input_id").sort("round_ts")
    assert truth.height == 60 and set(truth["truth_state"]) == {"resolved"}
    seen = truth["window_close"].list.last()
    assert truth["entry_price"].to_list() == seen.to_list()
    assert truth["resolved_price"].to_list()[:-1] == seen.to_list()[1:]

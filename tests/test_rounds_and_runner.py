"""Round inputs (no look-ahead, gaps) and the in-process runner's statuses."""

import datetime as dt
import threading

import polars as pl
import pytest

from coordinator_dagster.contracts import InferenceOutput, default_contract
from coordinator_dagster.models.rounds import build_inputs, raw_input, round_times
from coordinator_dagster.models.runner import EXAMPLE_MODELS, MAX_OUTPUT_BYTES, InProcessRunner, ModelSpec
from coordinator_dagster.feeds.synthetic import generate_records

T0 = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)


def synthetic(start, end):
    return pl.concat(
        [generate_records(seed=7, subject=s, kind="candle", granularity="1m", start=start, end=end) for s in ("BTC", "ETH")]
    )


def test_round_times_are_interval_multiples_in_a_half_open_window():
    rounds = round_times(T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(minutes=3), 60)
    assert rounds == [T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=2)]


def test_inputs_hold_only_records_closed_by_the_round():
    records = synthetic(T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1))
    contract = default_contract()
    frame = build_inputs(records, contract.scheduled_predictions, T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2), 60, 3600)
    assert frame.height == 120  # 60 rounds × BTC and ETH
    for row in frame.iter_rows(named=True):
        # The newest record handed to models is the candle that closed exactly at the round.
        assert row["window_ts"][-1] == row["round_ts"] - dt.timedelta(minutes=1)
        assert row["record_count"] == 60 == len(row["window_close"])
        assert row["resolvable_at"] == row["round_ts"] + dt.timedelta(minutes=1)


def test_rounds_after_now_or_in_a_gap_get_no_input():
    records = synthetic(T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1))
    gap = records.filter(~pl.col("ts_event").is_between(T0 + dt.timedelta(minutes=9), T0 + dt.timedelta(minutes=9)))
    contract = default_contract()
    now = T0 + dt.timedelta(minutes=30)
    frame = build_inputs(gap, contract.scheduled_predictions, T0, T0 + dt.timedelta(hours=1), now, 60, 3600)
    rounds = sorted(set(frame["round_ts"]))
    assert rounds[-1] == now  # the round at "now" is due, later ones are not
    assert T0 + dt.timedelta(minutes=10) not in rounds  # its closing candle is missing


def test_raw_input_matches_the_contract_type():
    records = synthetic(T0 - dt.timedelta(hours=1), T0 + dt.timedelta(minutes=5))
    frame = build_inputs(records, default_contract().scheduled_predictions, T0, T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(hours=1), 60, 600)
    payload = raw_input(frame.row(0, named=True))
    parsed = default_contract().raw_input_type.model_validate(payload)
    assert len(parsed.candles) == 10


# ---- hostile models, run through the real in-process runner ------------------------------------


class Raises:
    def tick(self, data):
        pass

    def predict(self, subject, horizon, step):
        raise RuntimeError("model bug")


class ReturnsString(Raises):
    def predict(self, subject, horizon, step):
        return "up"


class ReturnsNaN(Raises):
    def predict(self, subject, horizon, step):
        return {"value": float("nan")}


class ReturnsHuge(Raises):
    def predict(self, subject, horizon, step):
        return {"value": 1.0, "blob": "x" * (MAX_OUTPUT_BYTES + 1)}


# Holds the sleeper until the test lets it go: "it missed the round" and "it is still busy in the
# next one" then follow from the order of events, not from how long anything took.
RELEASE_SLEEPER = threading.Event()


class Sleeps(Raises):
    def predict(self, subject, horizon, step):
        RELEASE_SLEEPER.wait(300)
        return {"value": 1.0}


class Extra(Raises):
    def predict(self, subject, horizon, step):
        return {"value": 0.25, "confidence": 0.9}


def spec(cls):
    return ModelSpec(cls.__name__.lower(), cls.__name__, "x", 0, f"tests.test_rounds_and_runner:{cls.__name__}")


PAYLOAD = {"subject": "BTC", "round_ts": T0.isoformat(), "step_seconds": 60, "horizon_seconds": 60, "candles": []}


def test_each_kind_of_bad_model_costs_only_its_own_prediction():
    specs = [spec(c) for c in (Raises, ReturnsString, ReturnsNaN, ReturnsHuge, Sleeps, Extra)]
    specs.append(ModelSpec("missing", "Missing", "x", 0, "tests.test_rounds_and_runner:Nowhere"))
    RELEASE_SLEEPER.clear()
    # The timeout is the time the well-behaved models get to answer: generous for a loaded machine.
    runner = InProcessRunner(specs, InferenceOutput, timeout_seconds=3.0)
    try:
        # The sleeper is held for minutes: ABSENT means the round did not wait for it.
        outcomes = {o.model_id: o for o in runner.predict_round(PAYLOAD, 60, 60)}
        assert outcomes["raises"].status == "FAILED" and "model bug" in outcomes["raises"].failed_reason
        assert outcomes["returnsstring"].status == "FAILED" and "mapping" in outcomes["returnsstring"].failed_reason
        assert outcomes["returnsnan"].status == "FAILED" and "finite" in outcomes["returnsnan"].failed_reason
        assert outcomes["returnshuge"].status == "FAILED" and "limit" in outcomes["returnshuge"].failed_reason
        assert outcomes["sleeps"].status == "ABSENT"
        assert outcomes["missing"].status == "FAILED" and "failed to load" in outcomes["missing"].failed_reason
        assert outcomes["extra"].status == "PENDING" and outcomes["extra"].value == 0.25
        assert '"confidence":0.9' in outcomes["extra"].output
        # Next round: the sleeper is still busy and is ABSENT at once; the others answer again.
        again = {o.model_id: o for o in runner.predict_round(PAYLOAD, 60, 60)}
        assert again["sleeps"].status == "ABSENT" and "busy" in again["sleeps"].failed_reason
        assert again["extra"].status == "PENDING"
    finally:
        RELEASE_SLEEPER.set()
        runner.close()


@pytest.mark.parametrize("model", EXAMPLE_MODELS, ids=lambda s: s.model_id)
def test_example_models_answer_valid_deterministic_outputs(model):
    records = synthetic(T0 - dt.timedelta(hours=1), T0 + dt.timedelta(minutes=30))
    frame = build_inputs(records, default_contract().scheduled_predictions, T0, T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(hours=1), 60, 3600)
    answers = []
    for _ in range(2):
        runner = InProcessRunner([model], InferenceOutput, timeout_seconds=5)
        try:
            answers.append([runner.predict_round(raw_input(r), 60, 60)[0] for r in frame.iter_rows(named=True)])
        finally:
            runner.close()
    assert all(o.status == "PENDING" for o in answers[0])
    assert [o.value for o in answers[0]] == [o.value for o in answers[1]]
    assert len({round(o.value, 12) for o in answers[0]}) > 5  # it reacts to the data

"""What models are handed each round: full OHLCV candles over a time-span window, or the
output of the contract's input builder; and `inputs` partitions written before the OHLCV columns."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import polars as pl
import pytest
from pydantic import BaseModel

from coordinator_dagster.contracts import ContractError, InferenceOutput, ScheduledPrediction, PredictionScope, load_contract
from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.rounds import InputBuilderError, build_inputs, raw_input
from coordinator_dagster.models.runner import InProcessRunner, ModelSpec
from coordinator_dagster.models.tracker import TrackerBase

T0 = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
MIN = dt.timedelta(minutes=1)
KEY = "2026-11-20-10:00"
SCHEDULE = [
    ScheduledPrediction(
        scope_key="btc-60s", scope=PredictionScope(subject="BTC", step_seconds=60, horizon_seconds=60),
        prediction_interval_seconds=60, resolve_horizon_seconds=60,
    )
]


def candles(minutes: list[int]) -> pl.DataFrame:
    """One-minute BTC candles opening at T0 + m minutes: open 100 + m, high open + 2, low open − 1,
    close open + 1, volume 10 + m (so every field is told apart)."""
    return pl.DataFrame(
        {
            "source": "synthetic", "subject": "BTC", "kind": "candle", "granularity": "1m",
            "ts_event": [T0 + m * MIN for m in minutes],
            "open": [100.0 + m for m in minutes],
            "high": [102.0 + m for m in minutes],
            "low": [99.0 + m for m in minutes],
            "close": [101.0 + m for m in minutes],
            "volume": [10.0 + m for m in minutes],
            "price": [101.0 + m for m in minutes],
        },
        schema=schemas.FEED_RECORDS,
    )


def inputs(records: pl.DataFrame, window_seconds: int = 600, **kwargs: Any) -> pl.DataFrame:
    return build_inputs(records, SCHEDULE, T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=1), 60, window_seconds, **kwargs)


def round_row(frame: pl.DataFrame, minute: int) -> dict:
    [row] = frame.filter(pl.col("round_ts") == T0 + minute * MIN).iter_rows(named=True)
    return row


# ---- OHLCV -------------------------------------------------------------------------------------


def test_inputs_carry_every_candle_field_and_models_get_them():
    row = round_row(inputs(candles(list(range(60)))), 30)
    # The round at 10:30 with a 10-minute window: the candles opening 10:20 … 10:29.
    assert row["record_count"] == 10
    assert row["window_open"] == [100.0 + m for m in range(20, 30)]
    assert row["window_high"] == [102.0 + m for m in range(20, 30)]
    assert row["window_low"] == [99.0 + m for m in range(20, 30)]
    assert row["window_close"] == [101.0 + m for m in range(20, 30)]
    assert row["window_volume"] == [10.0 + m for m in range(20, 30)]
    newest = raw_input(row)["candles"][-1]
    assert newest == {"ts": (T0 + 29 * MIN).isoformat(), "open": 129.0, "high": 131.0, "low": 128.0, "close": 130.0, "volume": 39.0}


class Seen(TrackerBase):
    """Our tracker interface: answers with the newest candle's range (high − low) times volume."""

    def predict(self, subject, resolve_horizon_seconds, step_seconds):
        last = self.candles(subject)[-1]
        return {"value": (last["high"] - last["low"]) * last["volume"]}


def test_both_model_interfaces_see_ohlcv(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "reference_pack"))
    row = round_row(inputs(candles(list(range(60)))), 30)
    specs = [
        ModelSpec("ours", "Ours", "alice", 0, "tests.test_model_inputs:Seen"),
        ModelSpec("reference", "Reference", "bob", 1, "tests.test_model_inputs:ReferenceRange"),
    ]
    runner = InProcessRunner(specs, InferenceOutput, timeout_seconds=5)
    try:
        outcomes = {o.model_id: o for o in runner.predict_round(raw_input(row), 60, 60)}
    finally:
        runner.close()
    # Newest candle 10:29: high 131, low 128, volume 39 → 3 × 39.
    assert outcomes["ours"].value == 117.0
    assert outcomes["reference"].value == 117.0
    assert json.loads(outcomes["reference"].output)["open"] == 129.0


def _reference_range() -> type:
    from refcomp.cruncher import ModelBaseClass

    class ReferenceRange(ModelBaseClass):
        """The reference's interface: reads `candles_1m` as the reference hands it."""

        def _predict(self, subject, resolve_horizon_seconds, step_seconds):
            last = self.latest[subject]["candles_1m"][-1]
            return {"value": (last["high"] - last["low"]) * last["volume"], "open": last["open"]}

    return ReferenceRange


# ---- the window is a time span -------------------------------------------------------------------


def test_the_window_is_a_time_span_not_a_count():
    # Candles 10:00 … 10:59 with 10:22 … 10:26 missing: the round at 10:30 (10-minute window)
    # gets the five candles 10:20, 10:21, 10:27, 10:28, 10:29, never older ones to make up ten.
    records = candles([m for m in range(60) if not 22 <= m <= 26])
    row = round_row(inputs(records), 30)
    assert row["record_count"] == 5
    assert [ts.minute for ts in row["window_ts"]] == [20, 21, 27, 28, 29]
    # The count form (input_window_size feed steps) is the same span: 10 × 60 s.
    contract = load_contract("tests.test_model_inputs:ten_steps")
    assert contract.input_window_span(60) == 600 and contract.input_window_span(1) == 10
    assert load_contract("tests.test_model_inputs:two_minutes").input_window_span(60) == 120


def ten_steps():
    from coordinator_dagster.contracts import CrunchContract

    return CrunchContract(input_window_size=10)


def two_minutes():
    from coordinator_dagster.contracts import CrunchContract

    return CrunchContract(input_window_size=10, input_window_seconds=120)


# ---- the input builder --------------------------------------------------------------------------


def features(records: pl.DataFrame) -> dict:
    """A competition's own features: the newest close, the return over the window, the mean
    volume and the widest range, keyed by `symbol` as reference models store their data."""
    closes = records["close"]
    return {
        "symbol": records["subject"][-1],
        "last_close": closes[-1],
        "window_return": closes[-1] / closes[0] - 1.0,
        "mean_volume": records["volume"].mean(),
        "max_range": (records["high"] - records["low"]).max(),
        "count": records.height,
    }


def test_the_input_builder_hands_models_its_own_features(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "reference_pack"))
    monkeypatch.setenv("INFERENCE_INPUT_BUILDER", "tests.test_model_inputs:features")
    contract = load_contract("")
    assert contract.input_builder is features
    frame = inputs(candles(list(range(60))), builder=contract.input_builder, input_type=contract.builder_output_type)
    row = round_row(frame, 30)
    # Worked example, round 10:30, window 10:20 … 10:29: closes 121 … 130, volumes 30 … 39.
    built = {"symbol": "BTC", "last_close": 130.0, "window_return": 130.0 / 121.0 - 1.0, "mean_volume": 34.5, "max_range": 3.0, "count": 10}
    assert json.loads(row["model_input"]) == built
    payload = raw_input(row)
    assert payload["input"] == built and "candles" not in payload
    specs = [
        ModelSpec("ours", "Ours", "alice", 0, "tests.test_model_inputs:FeatureTracker"),
        ModelSpec("reference", "Reference", "bob", 1, "tests.test_model_inputs:ReferenceFeatures"),
    ]
    runner = InProcessRunner(specs, InferenceOutput, timeout_seconds=5)
    try:
        outcomes = {o.model_id: o for o in runner.predict_round(payload, 60, 60)}
    finally:
        runner.close()
    assert outcomes["ours"].value == pytest.approx(130.0 / 121.0 - 1.0)
    assert outcomes["reference"].value == 34.5  # feed_update got the features as built


class FeatureTracker(TrackerBase):
    def predict(self, subject, resolve_horizon_seconds, step_seconds):
        return {"value": self.latest_input(subject)["window_return"]}


def _reference_features() -> type:
    from refcomp.cruncher import ModelBaseClass

    class ReferenceFeatures(ModelBaseClass):
        def _predict(self, subject, resolve_horizon_seconds, step_seconds):
            return {"value": self.latest[subject]["mean_volume"]}

    return ReferenceFeatures


# Built on first use: the reference-style base class lives in a test pack the tests put on the path.
_LAZY = {"ReferenceRange": _reference_range, "ReferenceFeatures": _reference_features}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _LAZY[name]()
    raise AttributeError(name)


class Features(BaseModel):
    symbol: str
    last_close: float
    count: int


def typed(records: pl.DataFrame) -> dict:
    return {"symbol": "BTC", "last_close": records["close"][-1], "count": records.height, "dropped": 1}


def test_a_raw_input_type_validates_the_builders_output():
    row = round_row(inputs(candles(list(range(60))), builder=typed, input_type=Features), 30)
    assert json.loads(row["model_input"]) == {"symbol": "BTC", "last_close": 130.0, "count": 10}
    with pytest.raises(InputBuilderError, match=r"(?s)btc-60s at 2026-11-20T10:01:00Z.*last_close"):
        inputs(candles(list(range(60))), builder=lambda records: {"symbol": "BTC"}, input_type=Features)


def test_a_builder_that_fails_stops_the_inputs_naming_the_round():
    with pytest.raises(InputBuilderError, match=r"btc-60s at 2026-11-20T10:01:00Z: raised ZeroDivisionError"):
        inputs(candles(list(range(60))), builder=lambda records: 1 / 0)
    with pytest.raises(InputBuilderError, match="returned list, not a mapping"):
        inputs(candles(list(range(60))), builder=lambda records: [1.0])
    with pytest.raises(InputBuilderError, match="not JSON-serialisable"):
        inputs(candles(list(range(60))), builder=lambda records: {"when": object()})


def test_a_bad_builder_is_a_start_up_error(monkeypatch):
    monkeypatch.setenv("INFERENCE_INPUT_BUILDER", "tests.test_model_inputs:nowhere")
    with pytest.raises(ContractError, match="INFERENCE_INPUT_BUILDER='tests.test_model_inputs:nowhere'"):
        load_contract("")
    monkeypatch.setenv("INFERENCE_INPUT_BUILDER", "tests.test_model_inputs:round_row")
    with pytest.raises(ContractError, match=r"must accept \(records\)"):
        load_contract("")
    monkeypatch.delenv("INFERENCE_INPUT_BUILDER")
    with pytest.raises(ContractError, match="raw_input_type Features needs an input_builder"):
        load_contract("tests.test_model_inputs:features_without_builder")


def features_without_builder():
    from coordinator_dagster.contracts import CrunchContract

    return CrunchContract(raw_input_type=Features)


# ---- inputs written before the OHLCV columns --------------------------------------------------


def test_inputs_written_before_the_ohlcv_columns_stay_readable(tmp_path):
    store = Lake(tmp_path)
    two_hours = T0 + dt.timedelta(hours=2)
    new = build_inputs(candles(list(range(120))), SCHEDULE, T0, two_hours, two_hours, 60, 120)
    hour_10, hour_11 = new.filter(pl.col("round_ts") < T0 + 60 * MIN), new.filter(pl.col("round_ts") >= T0 + 60 * MIN)
    # The 10:00 hour as an earlier version wrote it: no OHLCV lists, no model_input.
    old = hour_10.drop("window_open", "window_high", "window_low", "window_volume", "model_input")
    path = store.partition_path("inputs", KEY)
    path.parent.mkdir(parents=True)
    old.write_parquet(path)
    store.write("inputs", hour_11, "2026-11-20-11:00")

    both = store.read_window("inputs", T0, T0 + dt.timedelta(hours=2))
    assert both.height == 119
    assert both.filter(pl.col("round_ts") < T0 + 60 * MIN)["window_open"].null_count() == 59
    assert both.filter(pl.col("round_ts") >= T0 + 60 * MIN)["window_open"].null_count() == 0
    # The DuckDB views read the two files by column name.
    seen = store.query("SELECT round_ts, window_open[1] AS first_open FROM inputs ORDER BY round_ts")
    assert seen["first_open"].null_count() == 59 and seen["first_open"][-1] == 100.0 + 117
    # A model asked about an old round gets the closes and null for the rest.
    candle = raw_input(both.row(5, named=True))["candles"][-1]
    assert candle["close"] == 101.0 + 5 and candle["open"] is None and candle["volume"] is None


# ---- through the assets ------------------------------------------------------------------------


def test_the_assets_hand_models_the_builders_input(tmp_path):
    import dagster as dg

    from assets import default_assets
    from coordinator_dagster.contracts import default_contract
    from resources import InProcessModelRunner
    from tests.conftest import pipeline_resources

    manifest = tmp_path / "models.json"
    manifest.write_text(json.dumps([{"model_id": "features", "name": "Features", "cruncher": "alice", "cruncher_index": 0,
                                     "entrypoint": "tests.test_model_inputs:FeatureTracker"}]))
    contract = default_contract().model_copy(update={"input_builder": features, "input_window_seconds": 300})
    resources = pipeline_resources(
        tmp_path, T0 + dt.timedelta(hours=3), contract=contract, model_runner=InProcessModelRunner(manifest=str(manifest), timeout_seconds=5.0)
    )
    dg.materialize(default_assets, selection=["feed_records"], resources=resources, partition_key="2026-11-20-09:00")
    result = dg.materialize(default_assets, selection=["feed_records", "inputs", "predictions"], resources=resources, partition_key=KEY)
    assert result.success
    store = Lake(tmp_path)
    rounds = store.read("inputs", KEY).filter(pl.col("subject") == "BTC")
    built = [json.loads(text) for text in rounds["model_input"]]
    # Each round's features are of its own five-minute window, from the feed's records.
    assert {b["count"] for b in built} == {5} and all(rounds["record_count"] == 5)
    assert [b["last_close"] for b in built] == rounds["window_close"].list.last().to_list()
    predictions = store.read("predictions", KEY).filter(pl.col("subject") == "BTC").sort("round_ts")
    assert set(predictions["status"]) == {"PENDING"}
    assert predictions["value"].to_list() == pytest.approx([b["window_return"] for b in built])

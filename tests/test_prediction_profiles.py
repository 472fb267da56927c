"""Prediction profiles: rounds per asset × trigger time, warm-up history on a model's first tick,
and the in-process driver's answers (valid, FAILED with the reason, ABSENT after the deadline)."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import polars as pl
import pytest

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.models.density_rounds import DensityRoundDriver
from coordinator_dagster.prediction_profiles import PredictionProfile, density_rounds, round_times, synth_profiles, tick_payload, warm_up_seconds

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
NORM = {"type": "builtin", "name": "norm", "params": {"loc": 0.0, "scale": 5.0}}


def _prices(start: dt.datetime, minutes: int, every_seconds: int = 60, assets=("BTC", "SOL")) -> pl.DataFrame:
    n = minutes * 60 // every_seconds
    rows = [(a, start + dt.timedelta(seconds=i * every_seconds), 100.0 + i * 0.01) for a in assets for i in range(n)]
    return pl.DataFrame(rows, schema={"subject": pl.String, "ts_event": pl.Datetime("us", "UTC"), "price": pl.Float64}, orient="row")


def test_synth_profiles_ask_for_317_and_79_densities_per_round():
    day, hour = synth_profiles()
    assert (day.name, day.horizon_seconds, day.interval_seconds, day.deadline_seconds) == ("24h", 86400, 3600, 40.0)
    assert day.densities_per_round() == 288 + 24 + 4 + 1
    assert (hour.name, hour.interval_seconds, hour.densities_per_round()) == ("1h", 720, 60 + 12 + 4 + 2 + 1)
    assert hour.assets == ["BTC", "SOL", "ETH", "XRP", "HYPE"] and len(day.assets) == 13
    limited = synth_profiles(["BTC", "XAUT"])
    assert [p.assets for p in limited] == [["BTC", "XAUT"], ["BTC"]]
    assert [s.scope_key for s in limited[1].scheduled_predictions()] == ["1h-btc"]
    assert limited[1].scheduled_predictions()[0].scope.step_seconds == 60


def test_a_step_that_does_not_divide_the_horizon_is_refused():
    with pytest.raises(ValueError, match="positive divisors"):
        PredictionProfile(name="x", assets=["BTC"], horizon_seconds=3600, steps=[700], interval_seconds=60)


def test_rounds_fall_on_multiples_of_the_interval_for_every_asset():
    hour = synth_profiles(["BTC", "SOL"])[1]
    times = round_times(hour, T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(hours=1))
    assert [t.minute for t in times] == [12, 24, 36, 48]
    rounds = density_rounds(synth_profiles(["BTC", "SOL", "ETH"]), T0, T0 + dt.timedelta(days=2))
    counts = dict(rounds.group_by("profile").len().iter_rows())
    assert counts == {"24h": 48 * 3, "1h": 240 * 3}
    assert rounds["performed_at"].is_sorted()
    first = rounds.row(0, named=True)
    assert first["resolvable_at"] - first["performed_at"] == dt.timedelta(seconds=first["horizon_seconds"])


def test_a_contract_carries_profiles_with_unique_names():
    contract = CrunchContract(prediction_profiles=synth_profiles(["BTC"]))
    assert [p.name for p in contract.prediction_profiles] == ["24h", "1h"]
    with pytest.raises(ValueError, match="names must be unique"):
        CrunchContract(prediction_profiles=synth_profiles(["BTC"])[:1] * 2)


def test_the_first_tick_carries_thirty_days_of_one_minute_history_and_later_ticks_only_new_prices():
    prices = _prices(T0, 32 * 24 * 60, every_seconds=30)
    now = T0 + dt.timedelta(days=31)
    assert warm_up_seconds(synth_profiles()) == 30 * 86400
    first = tick_payload(prices, ["BTC"], now, None, 30 * 86400)
    assert list(first) == ["BTC"]
    ts = [t for t, _ in first["BTC"]]
    assert len(ts) == 30 * 24 * 60 + 1 and ts[0] == int((now - dt.timedelta(days=30)).timestamp()) and ts[-1] == int(now.timestamp())
    assert set(np.diff(ts)) == {60}
    later = tick_payload(prices, ["BTC", "SOL"], now + dt.timedelta(minutes=2), now, 30 * 86400)
    assert [len(v) for v in later.values()] == [4, 4]  # 30-second prices in (now, now + 2 min]


class _Fixed:
    def __init__(self, answer=None, error=None, gate=None):
        self.answer, self.error, self.gate, self.seen = answer, error, gate, []

    def tick(self, data):
        self.seen.append(sum(len(v) for v in data.values()))

    def predict_all(self, asset, horizon, steps):
        if self.gate is not None:
            self.gate.wait(10)
        if self.error:
            raise self.error
        return self.answer


@pytest.mark.filterwarnings("ignore:sorted_dict.iloc is deprecated:DeprecationWarning")
def test_the_driver_warms_up_new_and_restarted_trackers_and_records_every_kind_of_answer():
    synth = pytest.importorskip("crunch_synth.examples.exampletracker")
    profile = PredictionProfile(name="1h", assets=["BTC"], horizon_seconds=3600, steps=[900, 3600], interval_seconds=720, deadline_seconds=0.5, history_days=3)
    gate = threading.Event()
    trackers = {
        "example": synth.GaussianStepTracker(),
        "valid": _Fixed({"900": [NORM] * 4, "3600": [NORM]}),
        "short": _Fixed({900: [NORM] * 3, 3600: [NORM]}),
        "raises": _Fixed(error=RuntimeError("boom")),
        "slow": _Fixed({900: [NORM] * 4, 3600: [NORM]}, gate=gate),
    }
    driver = DensityRoundDriver(trackers, [profile])
    prices = _prices(T0, 4 * 24 * 60, assets=("BTC",))
    now = T0 + dt.timedelta(days=3, hours=12)
    driver.tick(prices, now)
    assert trackers["valid"].seen == [3 * 24 * 60 + 1]
    answers = {a.model_id: a for a in driver.ask(profile, "BTC", now)}
    gate.set()
    assert answers["example"].status == "PENDING" and len(answers["example"].densities[900]) == 4
    assert answers["valid"].densities == {900: [NORM] * 4, 3600: [NORM]}
    assert (answers["short"].status, answers["short"].failed_reason) == ("FAILED", "step 900: expected 4 densities, got 3")
    assert answers["raises"].status == "FAILED" and "RuntimeError: boom" in answers["raises"].failed_reason
    assert answers["slow"].status == "ABSENT" and "within 0.5 s" in answers["slow"].failed_reason
    driver.tick(prices, now + dt.timedelta(minutes=12))
    assert trackers["valid"].seen[-1] == 12
    driver.restart("valid")
    driver.tick(prices, now + dt.timedelta(minutes=24))
    assert trackers["valid"].seen[-1] == 3 * 24 * 60 + 1
    driver.close()

"""The 1 h volatility term of density rounds: its pieces against crunch-synth's (the participant
package, a dev dependency), where it applies, and answers it refuses."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from coordinator_dagster.scoring.density import volatility as vol
from coordinator_dagster.scoring.density.rounds import DensityAnswer, round_scores

crunch_synth = pytest.importorskip("crunch_synth")
from crunch_synth import volatility as reference  # noqa: E402

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
STEPS = (60, 300, 900, 1800, 3600)


def _norm(loc, scale):
    return {"type": "builtin", "name": "norm", "params": {"loc": loc, "scale": scale}}


def _answer(rng, mixtures):
    out = {}
    for step in STEPS:
        spread = 20.0 * (step / 60) ** 0.5
        items = []
        for _ in range(3600 // step):
            if mixtures:
                t = {"type": "builtin", "name": "t", "params": {"df": float(rng.uniform(2, 6)), "loc": 0.0, "scale": spread}}
                items.append({"type": "mixture", "components": [{"density": _norm(float(rng.normal(0, 2)), spread), "weight": 0.7}, {"density": t, "weight": 0.3}]})
            else:
                items.append(_norm(float(rng.normal(0, 2)), float(spread * rng.uniform(0.5, 2))))
        out[step] = items
    return out


@pytest.mark.parametrize("mixtures", [False, True], ids=["gaussian", "mixture"])
def test_paths_are_the_participant_packages_draw_for_draw_and_leave_global_state_alone(mixtures):
    densities = _answer(np.random.default_rng(3), mixtures)
    np.random.seed(99)
    before = np.random.get_state()[1].copy()
    ours = vol.simulate_paths(densities, 90_000.0, vol.seed_for("BTC", 1_790_000_000))
    assert np.array_equal(np.random.get_state()[1], before)
    theirs = reference.simulate_price_paths(densities, 90_000.0, vol.seed_for("BTC", 1_790_000_000))
    assert ours.shape == (1000, 61)
    np.testing.assert_array_equal(ours, theirs)


def test_ensemble_crps_and_block_volatility_agree_with_the_participant_package():
    rng = np.random.default_rng(4)
    forecasts = rng.lognormal(1, 0.4, (1000, 12))
    forecasts[5, 3] = np.nan
    observed = rng.lognormal(1, 0.4, 12)
    ours = vol.ensemble_crps(observed, forecasts)
    theirs = [reference.crps_ensemble(observed[i], forecasts[:, i]) for i in range(12)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)
    # Worked example: members 1, 2, 3 against 2 → E|X − 2| = 2/3, E|X − X′| = 8/9, CRPS = 2/3 − 4/9 = 2/9.
    assert vol.ensemble_crps(np.array([2.0]), np.array([[1.0], [2.0], [3.0]]))[0] == pytest.approx(2 / 9, rel=1e-15)
    paths = 100 + np.cumsum(rng.normal(0, 0.1, (50, 61)), axis=1)
    paths[0, 7] = np.nan
    np.testing.assert_array_equal(vol.block_volatility(paths, 5), reference.block_volatilities(paths, 5))


def test_the_term_applies_to_one_hour_rounds_of_the_volatility_assets_only():
    config = vol.VolatilityConfig()
    hourly = {60: [_norm(0, 1)] * 60, 300: [_norm(0, 1)] * 12}
    assert config.applies("BTC", hourly) and config.applies("HYPE", hourly)
    assert not config.applies("XAUT", hourly)  # a 1 h asset Synth does not volatility-score
    assert not config.applies("BTC", {300: [_norm(0, 1)] * 288})  # the 24 h profile
    assert vol.seed_for("BTC", 1_790_003_600) == vol.seed_for("BTC", 1_790_003_600) != vol.seed_for("ETH", 1_790_003_600)


def _prices(minutes=61, start=90_000.0, seed=5):
    moves = np.random.default_rng(seed).normal(0, 30, minutes)
    return pl.DataFrame({"subject": "BTC", "ts_event": [T0 + dt.timedelta(minutes=m) for m in range(minutes)], "price": start + np.cumsum(moves)})


def test_an_answer_whose_steps_cannot_make_price_paths_fails_with_the_reason():
    rng = np.random.default_rng(6)
    good = _answer(rng, False)
    uneven = {60: [_norm(0, 20)] * 60, 420: [_norm(0, 50)] * 8}  # 7-minute steps do not tile the hour's 1-minute grid
    answers = [DensityAnswer("good", "BTC", "1h", 3600, T0, good), DensityAnswer("uneven", "BTC", "1h", 3600, T0, uneven)]
    rows = {r["model_id"]: r for r in round_scores(answers, _prices()).iter_rows(named=True)}
    assert rows["good"]["status"] == "SCORED" and rows["good"]["vol_crps"] > 0
    assert rows["uneven"]["status"] == "FAILED" and rows["uneven"]["failed_reason"].startswith("volatility term: steps 420 s and 60 s")
    assert rows["uneven"]["score"] == 0.0 and rows["uneven"]["vol_crps"] is None


def test_a_sharper_volatility_forecast_scores_a_smaller_term():
    """Realised 1-minute moves of sd 30: paths with that spread beat paths ten times too wide."""
    right = {60: [_norm(0, 30)] * 60}
    wide = {60: [_norm(0, 300)] * 60}
    answers = [DensityAnswer("right", "BTC", "1h", 3600, T0, right), DensityAnswer("wide", "BTC", "1h", 3600, T0, wide)]
    rows = {r["model_id"]: r for r in round_scores(answers, _prices()).iter_rows(named=True)}
    assert 0 < rows["right"]["vol_crps"] < rows["wide"]["vol_crps"] / 5

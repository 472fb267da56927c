"""CRPS scoring of density forecasts: agreement with crunch-synth's evaluator (the participant
package, a dev dependency), the grid bounds, round normalisation and the asset-weighted total."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from coordinator_dagster.scoring.density import crps as grid
from coordinator_dagster.scoring.density.rounds import CrpsConfig, DensityAnswer, normalise, round_scores, weighted_overall
from coordinator_dagster.scoring.density.spec import check_density, check_forecast

crunch_synth = pytest.importorskip("crunch_synth")
from crunch_synth.tracker_evaluator import crps_integral  # noqa: E402

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
SHAPES = {"t": {"df": (1, 30)}, "lognorm": {"s": (0.2, 1.5)}, "gamma": {"a": (1, 5)}, "weibull_min": {"c": (1, 3)},
          "weibull_max": {"c": (1, 3)}, "beta": {"a": (1, 4), "b": (1, 4)}, "chi": {"df": (1, 5)}, "chi2": {"df": (2, 6)},
          "pareto": {"b": (1, 4)}, "f": {"dfn": (2, 10), "dfd": (2, 10)}}


def _leaf(rng, name=None, spread=100.0):
    name = name or str(rng.choice(["norm", "cauchy", "laplace", "expon", "rayleigh", *SHAPES]))
    params = {"loc": float(rng.normal(0, spread)), "scale": float(rng.uniform(0.05, 3) * spread)}
    params.update({k: float(rng.uniform(*r)) for k, r in SHAPES.get(name, {}).items()})
    return {"type": "builtin", "name": name, "params": params}


def _density(rng, spread=100.0):
    k = int(rng.integers(1, 4))
    if k == 1 and rng.random() < 0.5:
        return _leaf(rng, spread=spread)
    return {"type": "mixture", "components": [{"density": _leaf(rng, spread=spread), "weight": float(rng.uniform(0.1, 2))} for _ in range(k)]}


def test_crps_agrees_with_the_participant_package_for_every_builtin_and_mixture():
    rng = np.random.default_rng(7)
    densities = [check_density(_density(rng)) for _ in range(300)] + [check_density(_leaf(rng, "norm")) for _ in range(300)]
    observed = rng.normal(0, 300, len(densities))
    observed[:20] = rng.uniform(-6000, 6000, 20)  # outside the grid on either side
    widths = np.array([grid.half_width(1500, int(s)) for s in rng.choice([60, 300, 3600, 86400], len(densities))])
    ours = grid.crps(grid.encode(densities), observed, widths)
    theirs = np.array([crps_integral(d, x, -w, w) for d, x, w in zip(densities, observed, widths)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0)


def test_half_width_grows_with_the_square_root_of_the_step_above_five_minutes():
    assert grid.half_width(1500, 60) == 1500
    assert grid.half_width(1500, 300) == 1500
    assert grid.half_width(1500, 3600) == pytest.approx(1500 * 12**0.5)
    assert grid.half_width(4, 86400) == pytest.approx(4 * 288**0.5)


class _FixedTracker(crunch_synth.TrackerBase):
    """Answers with densities drawn once per (asset, step) from a seeded generator."""

    def __init__(self, seed):
        super().__init__()
        self.rng = np.random.default_rng(seed)

    def predict(self, asset, horizon, step):
        spread = {"BTC": 60.0, "SOL": 0.2}[asset] * (step / 60) ** 0.5
        return [_density(self.rng, spread) for _ in range(horizon // step)]


def _walk(rng, start, sigma, minutes, drop_every=0):
    ts = np.arange(minutes) * 60 + int(T0.timestamp())
    prices = start + np.cumsum(rng.normal(0, sigma, minutes))
    if drop_every:  # gaps, so the closest-price rule and skipped increments are exercised
        keep = np.arange(minutes) % drop_every != 3
        ts, prices = ts[keep], prices[keep]
    return [(int(t), float(p)) for t, p in zip(ts, prices)]


# crunch-synth's PriceStore trims its window through sortedcontainers' deprecated `iloc`.
@pytest.mark.filterwarnings("ignore:sorted_dict.iloc is deprecated:DeprecationWarning")
@pytest.mark.parametrize("score_volatility", [True, False], ids=["with-volatility-term", "price-crps-only"])
@pytest.mark.parametrize("horizon,steps", [(3600, [60, 300, 900, 1800, 3600]), (86400, [300, 3600, 21600, 86400])])
def test_round_crps_agrees_with_the_tracker_evaluator(horizon, steps, score_volatility):
    rng = np.random.default_rng(horizon)
    minutes = 600 + horizon // 60 + 5
    series = {"BTC": _walk(rng, 90_000, 40, minutes, drop_every=7), "SOL": _walk(rng, 150, 0.15, minutes)}
    answers, expected, vol_expected = [], {}, {}
    for asset, points in series.items():
        for seed in (1, 2):
            tracker = _FixedTracker(seed)
            evaluator = crunch_synth.TrackerEvaluator(tracker, score_volatility=score_volatility)
            origin = points[0][0] + 600 * 60
            evaluator.tick({asset: [p for p in points if p[0] <= origin]})
            raw = tracker.predict_all(asset, horizon, steps)  # what the node receives from the tracker
            evaluator.quarantine_group.add(asset, origin, raw, horizon, steps)
            evaluator.tick({asset: [p for p in points if p[0] > origin]})
            evaluator.evaluate_quarantine(asset)
            expected[(f"m{seed}", asset)] = evaluator.scores[asset][-1][1]
            vol_expected[(f"m{seed}", asset)] = evaluator.vol_scores[asset][-1][1] if evaluator.vol_scores[asset] else None
            performed = dt.datetime.fromtimestamp(origin, tz=dt.timezone.utc)
            answers.append(DensityAnswer(f"m{seed}", asset, "p", horizon, performed, check_forecast(raw, horizon, steps)))
    prices = pl.DataFrame(
        [(asset, dt.datetime.fromtimestamp(t, tz=dt.timezone.utc), p) for asset, points in series.items() for t, p in points],
        schema={"subject": pl.String, "ts_event": pl.Datetime("us", "UTC"), "price": pl.Float64}, orient="row",
    )
    scores = round_scores(answers, prices, None if score_volatility else CrpsConfig(volatility=None))
    assert scores.height == 4 and set(scores["status"]) == {"SCORED"}
    for row in scores.iter_rows(named=True):
        key = (row["model_id"], row["subject"])
        assert row["crps"] == pytest.approx(expected[key], rel=1e-9, abs=0)
        if vol_expected[key] is None:
            assert row["vol_crps"] is None
        else:
            assert row["vol_crps"] == pytest.approx(vol_expected[key], rel=1e-9, abs=0)
    # The term is there exactly where the participant package applies it: 1 h rounds of BTC and SOL.
    assert (scores["vol_crps"].null_count() == 0) == (horizon == 3600 and score_volatility)


def _round(values):
    return pl.DataFrame({"subject": "BTC", "horizon_seconds": 3600, "performed_at": T0, "model_id": [f"m{i}" for i in range(len(values))], "v": values},
                        schema_overrides={"v": pl.Float64})


def test_normalisation_worked_example_best_one_worst_five_percent_zero_missing_worst():
    out = normalise(_round([1.0, 2.0, 3.0, 4.0, 11.0, None]), "v")
    # best 1; 95th percentile 4 + 0.8 × (11 − 4) = 9.6
    assert out["score"].to_list() == pytest.approx([1.0, 7.6 / 8.6, 6.6 / 8.6, 5.6 / 8.6, 0.0, 0.0])
    assert out["crps"].to_list() == [1.0, 2.0, 3.0, 4.0, 11.0, 11.0]
    assert np.percentile([1, 2, 3, 4, 11], 95) == pytest.approx(9.6)


def test_normalisation_without_spread_gives_valid_answers_one_and_missing_zero():
    out = normalise(_round([2.0, 2.0, None]), "v")
    assert out["score"].to_list() == [1.0, 1.0, 0.0]
    assert out["crps"].to_list() == [2.0, 2.0, 2.0]


def test_rounds_are_normalised_separately():
    a = _round([1.0, 3.0])
    b = _round([10.0, 5.0]).with_columns(pl.lit("ETH").alias("subject"))
    out = normalise(pl.concat([a, b]), "v")
    assert out["score"].to_list() == [1.0, 0.0, 0.0, 1.0]


def test_failed_and_absent_answers_get_the_rounds_worst_crps_and_score_zero():
    prices = pl.DataFrame({"subject": "BTC", "ts_event": [T0 + dt.timedelta(minutes=m) for m in range(61)], "price": [100.0 + m for m in range(61)]})
    good = {3600: [check_density(_leaf(np.random.default_rng(0), "norm"))]}
    wide = {3600: [check_density({"type": "builtin", "name": "norm", "params": {"loc": 0, "scale": 900}})]}
    answers = [
        DensityAnswer("good", "BTC", "1h", 3600, T0, good),
        DensityAnswer("wide", "BTC", "1h", 3600, T0, wide),
        DensityAnswer("late", "BTC", "1h", 3600, T0, None, "ABSENT", "no answer within 40 s"),
        DensityAnswer("bad", "BTC", "1h", 3600, T0, None, "FAILED", "step 60: expected 60 densities, got 3"),
    ]
    out = round_scores(answers, prices).sort("model_id")
    rows = {r["model_id"]: r for r in out.iter_rows(named=True)}
    worst = max(rows["good"]["crps"], rows["wide"]["crps"])
    assert rows["late"]["crps"] == rows["bad"]["crps"] == worst
    assert rows["late"]["score"] == rows["bad"]["score"] == 0.0
    assert rows["late"]["status"] == "ABSENT" and rows["bad"]["failed_reason"].startswith("step 60")
    assert out["resolvable_at"].to_list() == [T0 + dt.timedelta(hours=1)] * 4
    assert rows["good"]["asset_weight"] == 1.0


def test_weighted_overall_worked_example_and_agreement_with_the_participant_formula():
    frame = pl.DataFrame({"model_id": ["a"] * 4, "subject": ["BTC", "BTC", "ETH", "SOL"], "score": [1.0, 0.5, 0.2, 0.4]})
    weights = {"BTC": 1.0, "ETH": 0.5, "SOL": 2.0}
    # (1 × 0.75 + 0.5 × 0.2 + 2 × 0.4) / 3.5 = 1.65 / 3.5
    assert weighted_overall(frame, "score", weights)["score"].to_list() == pytest.approx([1.65 / 3.5])
    synth = weighted_overall(frame, "score")
    w = crunch_synth.tracker_evaluator.ASSET_WEIGHTS
    expected = (w["BTC"] * 0.75 + w["ETH"] * 0.2 + w["SOL"] * 0.4) / (w["BTC"] + w["ETH"] + w["SOL"])
    assert synth["score"].to_list() == pytest.approx([expected], rel=1e-12)


def test_constants_are_the_participant_packages():
    from crunch_synth.constants import ASSET_WEIGHTS, CRPS_BOUNDS

    from coordinator_dagster.scoring.density.rounds import SYNTH_ASSET_WEIGHTS

    assert grid.SYNTH_HALF_WIDTHS == CRPS_BOUNDS["t"] and grid.NUM_POINTS == CRPS_BOUNDS["num_points"]
    assert grid.BASE_STEP_SECONDS == CRPS_BOUNDS["base_step"] and SYNTH_ASSET_WEIGHTS == ASSET_WEIGHTS


def test_round_scores_land_in_the_lake_table_the_leaderboards_read(tmp_path):
    from coordinator_dagster.lake.store import Lake
    from coordinator_dagster.partitions import window_keys_between

    prices = pl.DataFrame({"subject": "BTC", "ts_event": [T0 + dt.timedelta(minutes=m) for m in range(61)], "price": [100.0 + m for m in range(61)]})
    norm = {3600: [check_density({"type": "builtin", "name": "norm", "params": {"loc": 60, "scale": 30}})]}
    scores = round_scores([DensityAnswer("a", "BTC", "1h", 3600, T0, norm), DensityAnswer("b", "BTC", "1h", 3600, T0, None, "ABSENT", "late")], prices)
    lake = Lake(tmp_path)
    lake.write_windows("density_round_scores", scores, "performed_at", window_keys_between(T0, T0 + dt.timedelta(hours=1)))
    back = lake.query("SELECT model_id, subject, horizon_seconds, performed_at, status, score FROM density_round_scores ORDER BY model_id")
    assert back.rows() == [("a", "BTC", 3600, T0, "SCORED", 1.0), ("b", "BTC", 3600, T0, "ABSENT", 0.0)]

"""Density answers: the checks carried over from crunch-synth (component count, known names,
parameter ranges, six significant digits) and the per-round shape (one density per step interval)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from coordinator_dagster.scoring.density.spec import DensityError, DensityForecast, check_density, check_forecast, round_significant

NORM = {"type": "builtin", "name": "norm", "params": {"loc": 0.123456789, "scale": 2.0}}


def _mixture(*densities, weight=1.0):
    return {"type": "mixture", "components": [{"density": d, "weight": weight} for d in densities]}


def test_a_builtin_density_is_kept_with_its_parameters_rounded_to_six_significant_digits():
    assert check_density(NORM) == {"type": "builtin", "name": "norm", "params": {"loc": 0.123457, "scale": 2.0}}
    assert round_significant(123456.789) == 123457.0
    assert round_significant(-0.000123456789) == -0.000123457
    assert round_significant(0.0) == 0.0


def test_rounding_matches_the_participant_package():
    synth = pytest.importorskip("crunch_synth.utils.distributions")
    rng = np.random.default_rng(3)
    for _ in range(200):
        raw = _mixture(*[{"type": "builtin", "name": "t", "params": {"df": float(rng.uniform(1, 40)), "loc": float(rng.normal(0, 10) ** 3), "scale": float(rng.uniform(1e-4, 1e4))}} for _ in range(2)], weight=float(rng.uniform(0, 3)))
        assert check_density(raw) == synth.round_distribution_digits(copy.deepcopy(raw), digits=6)


def test_four_components_are_refused_even_through_nested_mixtures():
    check_density(_mixture(NORM, _mixture(NORM, NORM)))  # three leaves: fine
    with pytest.raises(DensityError, match="4 components"):
        check_density(_mixture(NORM, _mixture(NORM, NORM), NORM))
    with pytest.raises(DensityError, match="4 components"):
        check_density(_mixture(NORM, NORM, NORM, NORM))


def test_component_count_agrees_with_the_participant_package():
    synth = pytest.importorskip("crunch_synth.utils.distributions")
    for density in (_mixture(NORM, _mixture(NORM, NORM)), _mixture(NORM, _mixture(NORM, NORM), NORM)):
        ours_ok = True
        try:
            check_density(density)
        except DensityError:
            ours_ok = False
        theirs_ok = True
        try:
            synth.validate_distribution(density)
        except ValueError:
            theirs_ok = False
        assert ours_ok == theirs_ok


@pytest.mark.parametrize(
    "density,reason",
    [
        ({"type": "builtin", "name": "normal", "params": {"loc": 0, "scale": 1}}, "unknown builtin distribution 'normal'"),
        ({"type": "builtin", "name": "norm", "params": {"loc": 0, "scale": 0}}, "scale must be positive"),
        ({"type": "builtin", "name": "t", "params": {"loc": 0, "scale": 1, "df": -1}}, "df must be positive"),
        ({"type": "builtin", "name": "beta", "params": {"a": 1, "loc": 0, "scale": 1}}, r"missing \['b'\]"),
        ({"type": "builtin", "name": "norm", "params": {"loc": float("nan"), "scale": 1}}, "must be finite"),
        ({"type": "builtin", "name": "norm", "params": {"loc": "0", "scale": 1}}, "must be a number"),
        ({"type": "builtin", "name": "norm", "params": {"loc": True, "scale": 1}}, "must be a number"),
        ({"type": "scipy", "name": "norm", "params": {"loc": 0, "scale": 1}}, "scipy densities are not accepted"),
        ({"type": "kde"}, "unknown density type 'kde'"),
        ({"type": "mixture", "components": []}, "non-empty list"),
        (_mixture(NORM, NORM, weight=0.0), "every mixture weight is zero"),
        ({"type": "mixture", "components": [{"density": NORM}]}, "'density' and 'weight'"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_invalid_densities_are_refused_with_the_reason(density, reason):
    with pytest.raises(DensityError, match=reason):
        check_density(density)


def test_statistics_normal_is_stored_as_the_builtin_norm():
    assert check_density({"type": "statistics", "name": "normal", "params": {"mu": 1.5, "sigma": 2}}) == {
        "type": "builtin", "name": "norm", "params": {"loc": 1.5, "scale": 2.0}}


def test_a_forecast_needs_horizon_over_step_densities_for_each_requested_step():
    answer = {"60": [NORM] * 60, 300: [NORM] * 12, 7200: []}
    checked = check_forecast(answer, 3600, [60, 300, 7200])  # 7200 > horizon: not asked for
    assert sorted(checked) == [60, 300] and len(checked[60]) == 60
    with pytest.raises(DensityError, match="step 300: expected 12 densities, got 11"):
        check_forecast({60: [NORM] * 60, 300: [NORM] * 11}, 3600, [60, 300])
    with pytest.raises(DensityError, match="no densities for step 900"):
        check_forecast({60: [NORM] * 60}, 3600, [60, 900])
    with pytest.raises(DensityError, match=r"step 60, density 2.*scale must be positive"):
        check_forecast({60: [NORM, NORM, {"type": "builtin", "name": "norm", "params": {"loc": 0, "scale": -1}}] + [NORM] * 57}, 3600, [60])
    with pytest.raises(DensityError, match="must map each step"):
        check_forecast([NORM], 3600, [60])


def test_the_example_trackers_shape_and_the_readmes_wrapped_shape_are_both_accepted():
    tracker_style = {**_mixture(NORM), "step": 300}
    readme_style = {"step": 300, "prediction": NORM}
    checked = check_forecast({"densities": {300: [tracker_style, readme_style]}}, 600, [300])
    assert checked[300][0]["type"] == "mixture" and checked[300][1] == check_density(NORM)


def test_density_forecast_output_type_validates_and_rounds():
    forecast = DensityForecast.model_validate({"densities": {"300": [NORM]}})
    assert forecast.densities == {300: [check_density(NORM)]}
    with pytest.raises(ValueError, match="unknown builtin distribution"):
        DensityForecast.model_validate({"densities": {"300": [{"type": "builtin", "name": "x", "params": {}}]}})

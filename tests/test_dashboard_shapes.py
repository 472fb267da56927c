"""The dashboard's shaping rules (`api.dashboard.shapes`), each with a worked example: whole-token
prizes that add up exactly, exact percentages, chart times the dashboard's chart can parse."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from api.dashboard import shapes

def test_prize_split_adds_up_exactly_and_gives_leftovers_to_the_largest_remainders():
    assert shapes.prize_split(100, [333_333_334, 333_333_333, 333_333_333]) == [34, 33, 33]
    assert shapes.prize_split(1, [500_000_000, 250_000_000, 250_000_000]) == [1, 0, 0]
    # exact 0.75, 0.75, 1.5 → floors 0, 0, 1 → the two left go to the remainders .75 and .75
    assert shapes.prize_split(3, [250_000_000, 250_000_000, 500_000_000]) == [1, 1, 1]
    assert shapes.prize_split(1, [500_000_000, 500_000_000]) == [1, 0]  # a tie: the earlier entry
    assert shapes.prize_split(0, [1_000_000_000]) == [0]
    with pytest.raises(ValueError):
        shapes.prize_split(-1, [1_000_000_000])


def test_percent_is_exact_to_the_last_frac64_digit():
    assert shapes.percent(250_000_000) == 25.0
    assert shapes.percent(333_333_333) == 33.3333333
    assert shapes.percent(1) == 1e-7


def test_chart_time_has_no_offset_so_the_chart_can_append_z():
    aware = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert shapes.chart_time(aware) == "2026-11-20T01:00:00"
    assert shapes.chart_time(None) is None
    assert shapes.horizon_label(60) == "1m" and shapes.horizon_label(3600) == "1h" and shapes.horizon_label(45) == "45s"
    assert shapes.diversity_score(-0.25) == 0.75 and shapes.diversity_score(float("nan")) is None


def test_rolling_windows_average_the_trailing_hours_weighted_by_rounds():
    t0 = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    scores = pl.DataFrame(
        {
            "model_id": ["a"] * 4,
            "round_ts": [t0, t0 + dt.timedelta(minutes=30), t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=2)],
            "value": [1.0, 3.0, 5.0, float("nan")],
            "success": [True, True, True, True],
        }
    )
    rolled = shapes.rolling_windows(scores, {"w1": 1, "w2": 2}, ["model_id"])
    # hour 00 ends 01:00 (mean of 1 and 3), hour 01 ends 02:00; the NaN of hour 02 is no score.
    assert rolled["hour"].to_list() == [t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=2)]
    assert rolled["w1"].to_list() == [2.0, 5.0]
    assert rolled["w2"].to_list() == [2.0, 3.0]  # (1 + 3 + 5) / 3: weighted by rounds, not by hours


def test_metric_means_skip_nan_and_missing_metrics():
    snapshots = pl.DataFrame({"model_id": ["a", "a", "b"], "result_summary": ['{"ic": 0.2}', '{"ic": NaN}', "{}"]})
    means = {r["model_id"]: r["ic"] for r in shapes.metric_means(snapshots, ["ic"]).iter_rows(named=True)}
    assert means == {"a": 0.2, "b": None}


def test_cli_format_keys_crunchers_by_their_model_and_gives_percent():
    emission = {
        "crunch": "Crunch1",
        "cruncher_rewards": [{"cruncher_index": 7, "reward_pct": 750_000_000}, {"cruncher_index": 9, "reward_pct": 250_000_000}],
        "compute_provider_rewards": [{"provider": "P1", "reward_pct": 1_000_000_000}],
        "data_provider_rewards": [],
    }
    entries = [{"cruncher_index": 7, "model_id": "m-a"}]
    assert shapes.cli_format(emission, entries) == {
        "crunch": "Crunch1",
        "crunchEmission": {"m-a": 75.0, "9": 25.0},  # a cruncher without an entry keeps its index
        "computeProvider": {"P1": 100.0},
        "dataProvider": {},
    }

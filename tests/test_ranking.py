"""Ranking: dense ranks over the ranking value, models without a value unranked, and what the
default emission pays for ties and missing ranks (worked examples)."""

import datetime as dt
import json

import polars as pl
import pytest

from coordinator_dagster.contracts import default_contract
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.emission import default_build_emission, shares_by_rank
from coordinator_dagster.scoring.ranking import checkpoint_entries, leaderboard, rank

HOUR = dt.datetime(2026, 11, 16, 10, tzinfo=dt.timezone.utc)


def snapshots(values: dict[str, float | None], scored: dict[str, int] | None = None) -> pl.DataFrame:
    """One hourly snapshot per model with this value (None: no scored value in the hour)."""
    rows = [
        {
            "model_id": model_id,
            "period_start": HOUR,
            "period_end": HOUR + dt.timedelta(hours=1),
            "prediction_count": 60,
            "scored_count": (scored or {}).get(model_id, 60),
            "failed_count": 0,
            "value": value,
            "result_summary": json.dumps({"value": value}),
            "scoring_version": "v1",
        }
        for model_id, value in values.items()
    ]
    return pl.DataFrame(rows, schema=schemas.SNAPSHOTS)


def models(*model_ids: str) -> pl.DataFrame:
    rows = [{"model_id": m, "name": m.upper(), "cruncher": f"c-{m}", "cruncher_index": 10 + i} for i, m in enumerate(model_ids)]
    return pl.DataFrame(rows, schema={k: schemas.MODELS[k] for k in ("model_id", "name", "cruncher", "cruncher_index")})


def test_rank_is_dense_and_leaves_missing_values_unranked():
    frame = pl.DataFrame(
        {
            "model_id": ["a", "b", "c", "d", "e", "f"],
            "value": [0.5, 0.9, None, 0.9, float("nan"), 0.1],
            "count": [1, 5, 9, 7, 9, 1],
        }
    )
    ranked = rank(frame, "value", "desc", "count")
    # 0.9 twice → both rank 1 (d first: more scored predictions); 0.5 → 2 (dense, not 3); 0.1 → 3.
    # null and NaN have no rank and come last, by count then model_id.
    assert ranked.select("model_id", "rank").rows() == [("d", 1), ("b", 1), ("a", 2), ("f", 3), ("c", None), ("e", None)]
    ascending = rank(frame, "value", "asc", "count")
    assert ascending.select("model_id", "rank").rows() == [("f", 1), ("a", 2), ("d", 3), ("b", 3), ("c", None), ("e", None)]


def test_leaderboard_shows_tied_and_unranked_models():
    contract = default_contract()
    board = leaderboard(contract, snapshots({"alpha": 0.002, "beta": 0.002, "gamma": 0.001, "delta": None}), models("alpha", "beta", "gamma", "delta"))
    assert board.select("model_id", "rank", "ranking_value").rows() == [
        ("alpha", 1, 0.002),
        ("beta", 1, 0.002),
        ("gamma", 2, 0.001),
        ("delta", None, None),
    ]


def test_two_exactly_tied_models_are_paid_equally():
    # Both rank 1: each gets the 35 % tier; the 30 % the tiers leave is split between the two:
    # 350,000,000 + 150,000,000 = 500,000,000 each (ranked 1 and 2 they got 625,000,000 / 375,000,000).
    contract = default_contract().model_copy(update={"aggregation": default_contract().aggregation.model_copy(update={"ranking_key": "value"})})
    entries = checkpoint_entries(contract, snapshots({"alpha": 0.002, "beta": 0.002}, scored={"alpha": 50}), models("alpha", "beta"))
    assert [(e["model_id"], e["rank"]) for e in entries] == [("beta", 1), ("alpha", 1)]
    emission = default_build_emission(entries, "pk")
    assert [(r.cruncher_index, r.reward_pct) for r in emission.cruncher_rewards] == [(11, 500_000_000), (10, 500_000_000)]


def test_a_tie_at_the_top_of_three():
    # Ranks 1, 1, 2: tiers 350 M + 350 M + 100 M = 800 M; the 200 M left over is 66,666,666.67 each.
    # 416,666,666.67 → 416,666,667 twice and 166,666,666.67 → 166,666,667 add up to 1,000,000,001,
    # so the first entry gives back 1: equal up to the rounding remainder.
    assert shares_by_rank([1, 1, 2]) == [416_666_666, 416_666_667, 166_666_667]


def test_a_model_without_a_ranking_value_gets_only_its_part_of_the_unallocated_pool():
    contract = default_contract().model_copy(update={"aggregation": default_contract().aggregation.model_copy(update={"ranking_key": "value"})})
    frame = snapshots({"alpha": 0.002, "beta": 0.001, "gamma": 0.0})
    # gamma's only hour has scored predictions but no value (e.g. every score failed the metric).
    frame = frame.with_columns(pl.when(pl.col("model_id") == "gamma").then(None).otherwise(pl.col("value")).alias("value"))
    entries = checkpoint_entries(contract, frame, models("alpha", "beta", "gamma"))
    assert [(e["model_id"], e["rank"]) for e in entries] == [("alpha", 1), ("beta", 2), ("gamma", None)]
    # Tiers 350 M + 100 M + 0; the 550 M left over is 183,333,333.33 each:
    # 533,333,333 + 283,333,333 + 183,333,333 = 999,999,999, so rank 1 gets the 1 left: 533,333,334.
    emission = default_build_emission(entries, "pk")
    assert [r.reward_pct for r in emission.cruncher_rewards] == [533_333_334, 283_333_333, 183_333_333]


def test_ties_asking_for_more_than_the_pool_are_scaled_down():
    # Four entries tied at rank 1 and one at rank 2 ask for 4 × 35 % + 10 % = 150 %: each tier is
    # scaled by 1/1.5 → 233,333,333.33 and 66,666,666.67, rounded 233,333,333 and 66,666,667;
    # together 999,999,999, the first entry gets the 1 left.
    assert shares_by_rank([1, 1, 1, 1, 2]) == [233_333_334, 233_333_333, 233_333_333, 233_333_333, 66_666_667]
    assert sum(shares_by_rank([1] * 11)) == FRAC64_MULTIPLIER


def test_no_rank_at_all_splits_the_pool_equally():
    assert shares_by_rank([None, None, None, None]) == [250_000_000] * 4


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1", True, float("nan"), float("inf")])
def test_a_rank_that_is_not_a_positive_integer_is_refused(bad):
    with pytest.raises(ValueError, match="positive integer or null"):
        default_build_emission([{"model_id": "m", "cruncher_index": 1, "rank": bad}], "pk")


def test_the_checkpoint_reward_table_lists_a_cruncher_with_an_unranked_model():
    from assets.metadata import emission_shares

    entries = [
        {"model_id": "a", "cruncher": "c1", "cruncher_index": 1, "rank": 1},
        {"model_id": "b", "cruncher": "c2", "cruncher_index": 2, "rank": None},
        {"model_id": "c", "cruncher": "c2", "cruncher_index": 2, "rank": 2},
    ]
    emission = default_build_emission(entries, "pk").model_dump(mode="json")
    table = emission_shares(entries, emission)
    # c2 has a ranked and an unranked model: its best rank is shown, the unranked model listed last.
    assert table.select("rank", "cruncher_index", "models").rows()[:2] == [(1, 1, "a"), (2, 2, "c, b")]


@pytest.mark.process
def test_the_report_api_lists_tied_and_unranked_models_in_the_leaderboards_order(tmp_path):
    import httpx

    from api.app import create_app
    from api.settings import ApiSettings
    from tests.api_fixtures import seed_lake, serve

    seeded = seed_lake(tmp_path / "home", hours=1)
    frame = snapshots(
        {"zeta": 0.002, "alpha": 0.002, "gamma": 0.001, "beta": None, "__ensemble_main__": 0.003},
        scored={"zeta": 70, "alpha": 50},
    )
    board = leaderboard(default_contract(), frame, models("alpha", "beta", "gamma", "zeta"))
    seeded.lake.write("leaderboard", board)
    with serve(create_app(ApiSettings(home=tmp_path / "home"))) as base:
        listed = httpx.get(f"{base}/reports/leaderboard", params={"include_ensembles": "true"}).json()
    # zeta and alpha tie (zeta first: more scored predictions), gamma is next (rank 2, dense),
    # beta has no value: listed unranked before the (unranked) ensemble.
    assert [(e["model_id"], e["rank"]) for e in listed] == [
        ("zeta", 1), ("alpha", 1), ("gamma", 2), ("beta", None), ("__ensemble_main__", None),
    ]

"""Emission: the reference tiers, exact frac64 sums, on-chain indices, providers."""

from fractions import Fraction

import pytest

from coordinator_dagster.domain_types import FRAC64_MULTIPLIER, EmissionCheckpoint
from coordinator_dagster.scoring.emission import default_build_emission, round_shares, tier_shares


def entries(n):
    # Indices deliberately differ from list positions: the on-chain index must be used.
    return [{"model_id": f"m{i}", "cruncher_index": 100 + 3 * i, "rank": i + 1} for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 9, 10, 11, 37])
def test_shares_sum_to_exactly_one_billion(n):
    emission = default_build_emission(entries(n), "pubkey")
    assert sum(r.reward_pct for r in emission.cruncher_rewards) == FRAC64_MULTIPLIER
    assert len(emission.cruncher_rewards) == n


def test_reference_examples():
    assert tier_shares(1) == [1_000_000_000]
    assert tier_shares(2) == [625_000_000, 375_000_000]
    assert tier_shares(10) == [350_000_000] + [100_000_000] * 4 + [50_000_000] * 5


def test_five_entries_split_the_unallocated_share_equally():
    # tiers 350 + 4×100 = 750 M; the missing 250 M is split over five entries (+50 M each).
    assert tier_shares(5) == [400_000_000] + [150_000_000] * 4


def test_rounding_remainder_goes_to_rank_one():
    # seven entries: 850 M in tiers, 150 M / 7 = 21,428,571.43 each → rounds down; the rounded
    # shares add up to 999,999,997, so rank 1 gets the 3 left over.
    shares = tier_shares(7)
    assert shares[1:] == [121_428_571] * 4 + [71_428_571] * 2
    assert shares[0] == 350_000_000 + 21_428_571 + 3


def test_nine_entries_round_each_share_and_rank_one_absorbs_the_excess():
    # 950 M in tiers; the missing 50 M / 9 = 5,555,555.56 each. Ranks 2-5: 105,555,555.56 → 105,555,556;
    # ranks 6-9: 55,555,555.56 → 55,555,556; rank 1: 355,555,555.56 → 355,555,556. The rounded shares
    # add up to 1,000,000,004, so rank 1 gives back 4: 355,555,552 (the reference engine's numbers;
    # flooring gave 355,555,560 / 105,555,555 / 55,555,555).
    assert tier_shares(9) == [355_555_552] + [105_555_556] * 4 + [55_555_556] * 4


def test_exact_halves_round_to_even():
    exact = [Fraction(999_999_997, 2), Fraction(333_333_335, 2), Fraction(333_333_333, 2), Fraction(333_333_335, 2)]
    assert sum(exact) == FRAC64_MULTIPLIER
    # 499,999,998.5 → 499,999,998; 166,666,667.5 → 166,666,668; 166,666,666.5 → 166,666,666
    assert round_shares(exact) == [499_999_998, 166_666_668, 166_666_666, 166_666_668]


def test_eleven_and_more_give_nothing_past_rank_ten():
    for n in (11, 37):
        shares = tier_shares(n)
        assert shares[:10] == tier_shares(10)
        assert shares[10:] == [0] * (n - 10)


def test_rewards_carry_the_registered_cruncher_index():
    emission = default_build_emission(entries(3), "pubkey")
    assert [r.cruncher_index for r in emission.cruncher_rewards] == [100, 103, 106]


def test_missing_cruncher_index_is_refused():
    with pytest.raises(ValueError, match="no cruncher_index"):
        default_build_emission([{"model_id": "ghost", "rank": 1}], "pubkey")


def test_providers_with_a_pubkey_get_their_whole_pool():
    emission = default_build_emission(entries(2), "crunch", compute_provider="cpu-key", data_provider="data-key")
    assert emission.crunch == "crunch"
    assert [(r.provider, r.reward_pct) for r in emission.compute_provider_rewards] == [("cpu-key", FRAC64_MULTIPLIER)]
    assert [(r.provider, r.reward_pct) for r in emission.data_provider_rewards] == [("data-key", FRAC64_MULTIPLIER)]
    assert default_build_emission(entries(2), "crunch").compute_provider_rewards == []


def test_no_entries_give_an_empty_split():
    assert default_build_emission([], "pubkey").cruncher_rewards == []


def test_a_split_that_does_not_sum_is_invalid():
    with pytest.raises(ValueError, match="sum to exactly"):
        EmissionCheckpoint(crunch="x", cruncher_rewards=[{"cruncher_index": 0, "reward_pct": 999_999_999}])


# ---- contribution-weighted emission and properties of both strategies ---------------------------

import numpy as np  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from coordinator_dagster.scoring.emission import contribution_weighted_emission, contribution_weights, to_frac64  # noqa: E402


def test_contribution_weighted_hand_computed():
    # The reference's entries carry their metrics in result_summary.
    ranked = [
        {"model_id": "a", "cruncher_index": 7, "rank": 1, "result_summary": {"contribution": 0.0, "model_correlation": 0.5}},
        {"model_id": "b", "cruncher_index": 3, "rank": 2, "result_summary": {"contribution": 0.4, "model_correlation": 0.9}},
        {"model_id": "c", "cruncher_index": 5, "rank": 3, "result_summary": {"contribution": 0.2, "model_correlation": 0.1}},
    ]
    # norm(1/rank): 1/r = [1, 1/2, 1/3] → [1, 0.25, 0]; norm(contribution) = [0, 1, 0.5];
    # norm(1 − corr): [0.5, 0.1, 0.9] → [0.5, 0, 1].
    # composite = [0.5 + 0 + 0.1, 0.125 + 0.3 + 0, 0 + 0.15 + 0.2] = [0.6, 0.425, 0.35], total 1.375
    # → 0.436363.., 0.309090.., 0.254545.. → 436,363,636.4 / 309,090,909.1 / 254,545,454.5(45..)
    # round to 436,363,636 / 309,090,909 / 254,545,455, which add up to exactly 1,000,000,000.
    assert contribution_weights(ranked) == pytest.approx([0.6 / 1.375, 0.425 / 1.375, 0.35 / 1.375])
    emission = contribution_weighted_emission(ranked, "pk")
    assert [(r.cruncher_index, r.reward_pct) for r in emission.cruncher_rewards] == [
        (7, 436_363_636),
        (3, 309_090_909),
        (5, 254_545_455),
    ]


def test_contribution_weighted_falls_back_to_top_level_metrics():
    # This node's checkpoint entries carry the period's metrics at the top level of the entry.
    ranked = [
        {"model_id": "a", "cruncher_index": 7, "rank": 1, "contribution": 0.0, "model_correlation": 0.5},
        {"model_id": "b", "cruncher_index": 3, "rank": 2, "contribution": 1.0, "model_correlation": 0.9},
    ]
    # norm(1/rank) = [1, 0]; norm(contribution) = [0, 1]; norm(1 − corr) = [1, 0]
    # composite = [0.5 + 0 + 0.2, 0 + 0.3 + 0] = [0.7, 0.3] → shares 70 % / 30 %
    emission = contribution_weighted_emission(ranked, "pk")
    assert [(r.cruncher_index, r.reward_pct) for r in emission.cruncher_rewards] == [(7, 700_000_000), (3, 300_000_000)]
    # result_summary wins over the top level when both have the metric.
    nested = [{**e, "result_summary": {"contribution": 1.0 - e["contribution"]}} for e in ranked]
    # contribution now [1, 0]: composite = [0.5 + 0.3 + 0.2, 0] → the 1 % floor: [1/1.01, 0.01/1.01]
    assert contribution_weights(nested) == pytest.approx([1 / 1.01, 0.01 / 1.01])


def test_two_metric_less_entries_split_75_25_by_rank():
    # No contribution, no correlation: both components are constant and give each entry 0.5.
    # composite = [0.5·1 + 0.3·0.5 + 0.2·0.5, 0.5·0 + 0.3·0.5 + 0.2·0.5] = [0.75, 0.25]
    # (had a constant component given 1, the split would be [1.0, 0.5] → 2/3 and 1/3).
    ranked = [{"model_id": "a", "cruncher_index": 0, "rank": 1, "result_summary": {}}, {"model_id": "b", "cruncher_index": 1, "rank": 2}]
    emission = contribution_weighted_emission(ranked, "pk")
    assert [r.reward_pct for r in emission.cruncher_rewards] == [750_000_000, 250_000_000]


def test_contribution_weighted_floor_and_constant_components():
    ranked = [{"model_id": f"m{i}", "cruncher_index": i, "rank": i + 1, "result_summary": {"contribution": 0.5, "model_correlation": 0.2}} for i in range(3)]
    # contribution and diversity constant → 0.5 each; 1/rank normalised [1, 0.25, 0] → composite
    # [0.5 + 0.25, 0.125 + 0.25, 0 + 0.25] = [0.75, 0.375, 0.25]; the last entry stays above the floor.
    weights = contribution_weights(ranked)
    assert weights == pytest.approx([0.75 / 1.375, 0.375 / 1.375, 0.25 / 1.375])
    # Metrics that differ only by float noise count as constant (spread below 1e-12).
    noisy = [{**e, "result_summary": {"contribution": 0.5 + i * 1e-15, "model_correlation": 0.2}} for i, e in enumerate(ranked)]
    assert contribution_weights(noisy) == pytest.approx(weights)
    # A component at its minimum everywhere but one entry: the floor lifts the others to 1 %.
    skewed = [{"model_id": "top", "cruncher_index": 0, "rank": 1, "contribution": 1.0, "model_correlation": 0.0}]
    skewed += [{"model_id": f"m{i}", "cruncher_index": i, "rank": 50, "contribution": 0.0, "model_correlation": 1.0} for i in range(1, 4)]
    floored = contribution_weights(skewed)
    assert min(floored) == pytest.approx(0.01 / (1 + 0.03))
    assert sum(floored) == pytest.approx(1.0)


def test_contribution_weighted_missing_values_count_as_the_minimum():
    ranked = [
        {"model_id": "a", "cruncher_index": 0, "rank": 1, "result_summary": {"contribution": 0.2, "model_correlation": None}},
        {"model_id": "b", "cruncher_index": 1, "rank": None, "result_summary": {"contribution": 0.6, "model_correlation": 0.3}},
        {"model_id": "c", "cruncher_index": 2, "rank": 2, "result_summary": {"contribution": "n/a", "model_correlation": 0.3}},
    ]
    # 1/rank: [1, missing, 0.5] → [1, 0, 0]; contribution: [0.2, 0.6, missing] → [0, 1, 0];
    # diversity: [missing, 0.7, 0.7] → constant → 0.5 each.
    # composite = [0.5 + 0 + 0.1, 0 + 0.3 + 0.1, 0 + 0 + 0.1] = [0.6, 0.4, 0.1], total 1.1
    assert contribution_weights(ranked) == pytest.approx([0.6 / 1.1, 0.4 / 1.1, 0.1 / 1.1])


def test_to_frac64_gives_the_rounding_remainder_to_rank_one():
    assert to_frac64([1, 1, 1]) == [333_333_334, 333_333_333, 333_333_333]
    # Six equal weights: 166,666,666.67 each rounds up to 166,666,667; the six add up to
    # 1,000,000,002, so rank 1 gives back 2 (flooring gave rank 1 166,666,670 and the others 166,666,666).
    assert to_frac64([0.5] * 6) == [166_666_665] + [166_666_667] * 5


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    missing=st.floats(min_value=0, max_value=1),
    constant=st.booleans(),
    tie_levels=st.integers(min_value=0, max_value=30),
)
def test_every_ranking_of_1_to_10000_models_sums_exactly(n, seed, missing, constant, tie_levels):
    # Hypothesis lists top out below 10,000 elements: it draws the size and a seed, numpy the values.
    rng = np.random.default_rng(seed)
    contribution = np.full(n, 0.3) if constant else rng.normal(0, 1, n)
    correlation = rng.uniform(-1, 1, n)
    gaps = rng.random(n) < missing
    if tie_levels:  # dense ranks of a ranking value with only `tie_levels` distinct values, some missing
        levels = np.sort(rng.integers(0, tie_levels, n))[::-1]
        distinct = np.unique(levels[~gaps])
        above = len(distinct) - np.searchsorted(distinct, levels, side="right")  # distinct values above each
        ranks = [None if gaps[i] else int(above[i]) + 1 for i in range(n)]
        ranks = sorted(ranks, key=lambda r: (r is None, r or 0))
    else:
        ranks = list(range(1, n + 1))
    ranked = [
        {
            "model_id": f"m{i}",
            "cruncher_index": int(i * 7 + 1),
            "rank": ranks[i],
            "result_summary": {"contribution": None if gaps[i] else float(contribution[i]), "model_correlation": float(correlation[i])},
        }
        for i in range(n)
    ]
    for build in (default_build_emission, contribution_weighted_emission):
        rewards = [r.reward_pct for r in build(ranked, "pk").cruncher_rewards]
        assert sum(rewards) == FRAC64_MULTIPLIER
        assert len(rewards) == n
        assert all(r >= 0 for r in rewards)
    if tie_levels:
        return
    # Every share but rank 1's is its exact share rounded: within half a frac64 unit.
    tiers = [350_000_000] + [100_000_000] * 4 + [50_000_000] * 5
    exact = [Fraction(tiers[i] if i < 10 else 0) + Fraction(max(0, FRAC64_MULTIPLIER - sum(tiers[:n])), n) for i in range(n)]
    rewards = [r.reward_pct for r in default_build_emission(ranked, "pk").cruncher_rewards]
    assert all(abs(r - e) <= Fraction(1, 2) for r, e in zip(rewards[1:], exact[1:], strict=True))

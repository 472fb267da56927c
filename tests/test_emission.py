"""Emission: the reference tiers, exact frac64 sums, on-chain indices, providers."""

import pytest

from coordinator_dagster.domain_types import FRAC64_MULTIPLIER, EmissionCheckpoint
from coordinator_dagster.emission import default_build_emission, tier_shares


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
    # seven entries: 850 M in tiers, 150 M / 7 = 21,428,571.43 → floors, 3 left over for rank 1.
    shares = tier_shares(7)
    assert shares[1:] == [121_428_571] * 4 + [71_428_571] * 2
    assert shares[0] == 350_000_000 + 21_428_571 + 3


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

"""The production reward rule (`TopKPerGroup`) and absolute payouts, each rule with a worked
example in exact integers: slot shares by exp(α / rank) over K slots and the largest remainder
method, a retained share, the benchmark (excluded, with and without its cutoff), one payout per
participant, the pool split across horizons, prizes in the pool's smallest unit."""

from decimal import Context, Decimal
from fractions import Fraction

import pytest

from coordinator_dagster.contracts import CrunchContract, TopKPerGroup
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER, EmissionCheckpoint
from coordinator_dagster.scoring.emission import default_build_emission
from coordinator_dagster.scoring.payouts import prizes_of_shares
from coordinator_dagster.scoring.top_k_rewards import (
    BENCHMARK,
    NOT_ABOVE_BENCHMARK,
    NOT_BEST_OF_PARTICIPANT,
    OUTSIDE_TOP_K,
    SLOT_BENCHMARK_MISSING,
    SLOT_UNFILLED,
    SYNTH_PRODUCTION,
    largest_remainder,
    slot_amounts,
    slot_weights,
)


def entry(model_id, cruncher, index, by_horizon):
    """An entry in the published leaderboard shape: anchor score per horizon."""
    return {
        "model_id": model_id,
        "cruncher": cruncher,
        "cruncher_index": index,
        "ranks_by_horizon": {h: {"rank": None, "score": {"anchor": s}} for h, s in by_horizon.items()},
    }


# Two horizons. alice runs two models; "bench" is the benchmark.
ENTRIES = [
    entry("alice-1", "alice", 10, {"3600": 0.80, "86400": 0.60}),
    entry("alice-2", "alice", 10, {"3600": 0.75, "86400": 0.70}),
    entry("bob", "bob", 20, {"3600": 0.70, "86400": 0.50}),
    entry("carol", "carol", 30, {"3600": 0.40, "86400": 0.65}),
    entry("bench", "crunch", None, {"3600": 0.50, "86400": 0.55}),
]


def test_slot_weights_are_exp_alpha_over_rank_at_fifty_digits():
    e1, e_half, e_third = slot_weights(3, 1.0)
    assert str(e1)[:42] == "2.71828182845904523536028747135266249775724"[:42]
    assert str(e_half).startswith("1.6487212707001281468486507878141635716")
    assert str(e_third).startswith("1.3956124250860895286281253196025868375")
    # α = 0 weighs every slot the same; α is taken as the decimal it prints as.
    assert slot_weights(2, 0) == [Decimal(1), Decimal(1)]
    assert slot_weights(1, 0.1)[0] == Decimal("0.1").exp(Context(prec=50))


def test_largest_remainder_worked_example():
    # 7 units over exact 2.5, 2.25, 2.25: floors 2 + 2 + 2 = 6, the unit left goes to the largest
    # remainder (0.5, the first).
    assert largest_remainder([Fraction(5, 2), Fraction(9, 4), Fraction(9, 4)], 7) == [3, 2, 2]
    # Equal remainders: the earlier entry first.
    assert largest_remainder([Fraction(1, 2), Fraction(1, 2)], 1) == [1, 0]
    with pytest.raises(ValueError):
        largest_remainder([Fraction(1), Fraction(1)], 5)


def test_slot_amounts_worked_example_k3_two_groups():
    """K = 3, α = 1, two groups, 1,000,000,000 frac64.

    Exact slot shares of each group's 500,000,000: 500,000,000 × e^(1/p) / (e + e^0.5 + e^(1/3)) =
    235,854,866.338…, 143,053,207.677…, 121,091,925.985…; floors make 499,999,998 per group, so four
    units are left: they go to the largest remainders (0.985 twice, then 0.677 twice), the earlier
    group first among equals.
    """
    assert slot_amounts(2, 3, 1.0, FRAC64_MULTIPLIER) == [[235_854_866, 143_053_208, 121_091_926]] * 2
    # Seven units: exact 1.651, 1.0014, 0.848 per group; floors 1 + 1 + 0 per group leave three
    # units: 0.848 (group 1), 0.848 (group 2), 0.651 (group 1).
    assert slot_amounts(2, 3, 1.0, 7) == [[2, 1, 1], [1, 1, 1]]
    # One group, K = 2: e / (e + e^0.5) = 0.6224593312… → 622,459,331 and 377,540,669.
    assert slot_amounts(1, 2, 1.0, FRAC64_MULTIPLIER) == [[622_459_331, 377_540_669]]


def test_worked_example_with_benchmark_cutoff_retained_slots_and_one_payout_per_participant():
    """K = 3, α = 1, benchmark "bench" with its cutoff, pool 7 units.

    Horizon 3600: bench (0.50) is taken out; alice-1 0.80 takes slot 1, alice-2 0.75 is alice's
    second model (unpaid), bob 0.70 takes slot 2, carol 0.40 does not beat the benchmark: slot 3
    is retained. Horizon 86400: bench 0.55; alice-2 0.70 slot 1, carol 0.65 slot 2, alice-1 0.60
    is alice's second, bob 0.50 below the benchmark; slot 3 retained.
    frac64 slots per group (see above): 235,854,866 / 143,053,208 / 121,091,926.
    alice = 2 × 235,854,866 = 471,709,732; bob = carol = 143,053,208; retained 2 × 121,091,926 =
    242,183,852; total 1,000,000,000. Prizes of 7 units: slots [2, 1, 1] and [1, 1, 1] → alice 3,
    bob 1, carol 1, retained 2.
    """
    rule = TopKPerGroup(top_k=3, alpha=1.0, benchmark_model_id="bench", benchmark_cutoff=True, pool_amount=7)
    out = rule.payouts(ENTRIES, "crunch-pubkey")
    assert out.groups == ["3600", "86400"]
    rewards = {r.cruncher_index: r.reward_pct for r in out.emission.cruncher_rewards}
    assert rewards == {10: 471_709_732, 20: 143_053_208, 30: 143_053_208}
    assert [r.cruncher_index for r in out.emission.cruncher_rewards] == [10, 20, 30]  # first paid first
    assert out.retained_pct == out.emission.retained_pct == 242_183_852
    assert sum(rewards.values()) + out.retained_pct == FRAC64_MULTIPLIER
    assert out.prizes == {10: 3, 20: 1, 30: 1} and out.retained_prize == 2
    table = {(r.group, r.status, r.model_id, r.slot): (r.reward_pct, r.prize, r.reason) for r in out.rows}
    assert table[("3600", "paid", "alice-1", 1)] == (235_854_866, 2, None)
    assert table[("3600", "paid", "bob", 2)] == (143_053_208, 1, None)
    assert table[("3600", "retained", None, 3)] == (121_091_926, 1, SLOT_UNFILLED)
    assert table[("3600", "unpaid", "alice-2", None)][2] == NOT_BEST_OF_PARTICIPANT
    assert table[("3600", "unpaid", "carol", None)][2] == NOT_ABOVE_BENCHMARK
    assert table[("3600", "unpaid", "bench", None)][2] == BENCHMARK
    assert table[("86400", "paid", "alice-2", 1)][0] == 235_854_866
    assert table[("86400", "paid", "carol", 2)][0] == 143_053_208
    assert table[("86400", "retained", None, 3)] == (121_091_926, 1, SLOT_UNFILLED)
    assert table[("86400", "unpaid", "bob", None)][2] == NOT_ABOVE_BENCHMARK


def test_worked_example_at_synths_production_parameters():
    """K = 4, α = 1, two horizons, benchmark excluded without a cutoff, the pool of the published
    checkpoint CKP_20260608_120000 (392.786596 USD) in micro-USD.

    Horizon 3600: the benchmark scores best (0.90) but holds no slot and, without the cutoff,
    holds nobody back: dan-a 0.81 slot 1, dan-b is dan's second model, erin 0.69 slot 2, frank 0.52
    slot 3, slot 4 retained. Horizon 86400: dan-b 0.74 slot 1, erin 0.58 slot 2, frank has no
    score; slots 3 and 4 retained.
    Slot p is worth ½ × e^(1/p) / (e + e^(1/2) + e^(1/3) + e^(1/4)) of the whole:
    frac64 192,877,844.30 / 116,986,326.15 / 99,026,787.14 / 91,109,042.41 per horizon; the two
    units left after the floors go to the largest remainders (slot 4 of each, .41) → 91,109,043.
    dan 2 × 192,877,844 = 385,755,688; erin 2 × 116,986,326 = 233,972,652; frank 99,026,787;
    retained 91,109,043 + 99,026,787 + 91,109,043 = 281,244,873; total 1,000,000,000.
    Micro-USD of 392,786,596: slots 75,759,832 / 45,950,661 / 38,896,395 / 35,786,410 per horizon
    (exact 75,759,831.91 / 45,950,660.83 / 38,896,394.64 / 35,786,410.63): dan 151,519,664, erin
    91,901,322, frank 38,896,395, retained 110,469,215.
    """
    entries = [
        entry("dan-a", "dan", 1, {"3600": 0.81, "86400": 0.62}),
        entry("dan-b", "dan", 1, {"3600": 0.77, "86400": 0.74}),
        entry("erin", "erin", 2, {"3600": 0.69, "86400": 0.58}),
        entry("frank", "frank", 3, {"3600": 0.52}),
        entry("benchmarktracker", "synth", None, {"3600": 0.90, "86400": 0.60}),
    ]
    rule = TopKPerGroup(**SYNTH_PRODUCTION, benchmark_model_id="benchmarktracker", pool_amount=392_786_596, pool_unit="micro-USD")
    out = rule.payouts(entries, "pk")
    rewards = {r.cruncher_index: r.reward_pct for r in out.emission.cruncher_rewards}
    assert rewards == {1: 385_755_688, 2: 233_972_652, 3: 99_026_787}
    assert out.retained_pct == 281_244_873 and sum(rewards.values()) + out.retained_pct == FRAC64_MULTIPLIER
    assert out.prizes == {1: 151_519_664, 2: 91_901_322, 3: 38_896_395} and out.retained_prize == 110_469_215
    table = {(r.group, r.status, r.model_id, r.slot): (r.reward_pct, r.prize, r.reason) for r in out.rows}
    assert table[("3600", "paid", "dan-a", 1)] == (192_877_844, 75_759_832, None)
    assert table[("3600", "paid", "frank", 3)] == (99_026_787, 38_896_395, None)
    assert table[("3600", "retained", None, 4)] == (91_109_043, 35_786_410, SLOT_UNFILLED)
    assert table[("86400", "retained", None, 3)] == (99_026_787, 38_896_395, SLOT_UNFILLED)
    assert table[("3600", "unpaid", "benchmarktracker", None)][2] == BENCHMARK
    assert table[("3600", "unpaid", "dan-b", None)][2] == NOT_BEST_OF_PARTICIPANT


def test_without_the_cutoff_the_benchmark_is_only_excluded():
    """Same entries, no cutoff: the benchmark holds no slot and everyone else may be paid.
    3600: alice-1, bob, carol fill the three slots; 86400: alice-2, carol, bob. Nothing retained:
    alice 235,854,866 × 2; bob 143,053,208 + 121,091,926; carol 121,091,926 + 143,053,208."""
    out = TopKPerGroup(top_k=3, benchmark_model_id="bench").payouts(ENTRIES, "pk")
    rewards = {r.cruncher_index: r.reward_pct for r in out.emission.cruncher_rewards}
    assert rewards == {10: 471_709_732, 20: 264_145_134, 30: 264_145_134}
    assert out.retained_pct == 0 and not [r for r in out.rows if r.status == "retained"]
    assert all(r.reason == BENCHMARK for r in out.rows if r.model_id == "bench")


def test_top_k_cuts_and_ranks_stay_with_the_score_order():
    # K = 1: only the best of each group is paid, the rest are outside the top K.
    out = TopKPerGroup(top_k=1, benchmark_model_id="bench").payouts(ENTRIES, "pk")
    assert {r.cruncher_index: r.reward_pct for r in out.emission.cruncher_rewards} == {10: FRAC64_MULTIPLIER}
    assert {r.model_id for r in out.rows if r.reason == OUTSIDE_TOP_K} == {"bob", "carol"}


def test_a_group_without_the_benchmark_under_cutoff_retains_its_whole_part():
    entries = [entry("a", "a", 1, {"3600": 0.9, "86400": 0.9}), entry("bench", "x", None, {"3600": 0.5})]
    out = TopKPerGroup(top_k=2, alpha=1.0, benchmark_model_id="bench", benchmark_cutoff=True).payouts(entries, "pk")
    # 3600: a beats the benchmark and takes slot 1 of that horizon; 86400 has no benchmark score,
    # so with the cutoff on it pays nobody and both its slots are retained.
    slots = slot_amounts(2, 2, 1.0, FRAC64_MULTIPLIER)
    assert {r.cruncher_index: r.reward_pct for r in out.emission.cruncher_rewards} == {1: slots[0][0]}
    retained_86400 = [r for r in out.rows if r.group == "86400" and r.status == "retained"]
    assert [r.reason for r in retained_86400] == [SLOT_BENCHMARK_MISSING] * 2
    assert out.retained_pct == FRAC64_MULTIPLIER - slots[0][0]


def test_nobody_eligible_retains_the_whole_pool_and_a_paid_model_needs_its_index():
    out = TopKPerGroup(top_k=2, pool_amount=500).payouts([], "pk")
    assert out.emission.cruncher_rewards == [] and out.retained_pct == FRAC64_MULTIPLIER and out.retained_prize == 500
    with pytest.raises(ValueError, match="cruncher_index"):
        TopKPerGroup(top_k=1).payouts([entry("orphan", None, None, {"60": 0.5})], "pk")


def test_lower_is_better_and_groups_by_asset_and_horizon():
    entries = [
        {"model_id": "m1", "cruncher_index": 1, "ranks_by_param": {"BTC:3600": {"rank": 2, "score": {"anchor": 0.2}}}},
        {"model_id": "m2", "cruncher_index": 2, "ranks_by_param": {"BTC:3600": {"rank": 1, "score": {"anchor": 0.1}}}},
    ]
    out = TopKPerGroup(top_k=1, group_by="param", direction="asc").payouts(entries, "pk")
    assert out.groups == ["BTC:3600"] and [r.cruncher_index for r in out.emission.cruncher_rewards] == [2]


def test_the_rule_is_a_contract_option_and_tiers_stay_the_default():
    assert CrunchContract().build_emission is default_build_emission
    rule = TopKPerGroup(top_k=3, benchmark_model_id="bench", benchmark_cutoff=True)
    contract = CrunchContract(build_emission=rule)
    emission = contract.build_emission(ENTRIES, "pk")
    assert isinstance(emission, EmissionCheckpoint) and emission.retained_pct == 242_183_852
    with pytest.raises(ValueError):
        TopKPerGroup(top_k=0)


def test_an_emission_must_account_for_every_unit():
    EmissionCheckpoint(crunch="c", cruncher_rewards=[{"cruncher_index": 1, "reward_pct": 600_000_000}], retained_pct=400_000_000)
    EmissionCheckpoint(crunch="c", cruncher_rewards=[], retained_pct=FRAC64_MULTIPLIER)
    with pytest.raises(ValueError, match="retained_pct"):
        EmissionCheckpoint(crunch="c", cruncher_rewards=[{"cruncher_index": 1, "reward_pct": 600_000_000}], retained_pct=300_000_000)
    with pytest.raises(ValueError):
        EmissionCheckpoint(crunch="c", cruncher_rewards=[{"cruncher_index": 1, "reward_pct": 600_000_000}])


def test_prizes_of_shares_worked_example():
    # 100 units over 333,333,334 / 333,333,333 / 333,333,333: exact 33.3333334, 33.3333333,
    # 33.3333333; floors 99, the unit left to the largest remainder (the first).
    assert prizes_of_shares([333_333_334, 333_333_333, 333_333_333], 100) == [34, 33, 33]
    # A large pool (10^15 micro-units) stays exact.
    assert prizes_of_shares([1, FRAC64_MULTIPLIER - 1], 10**15) == [1_000_000, 10**15 - 1_000_000]
    with pytest.raises(ValueError):
        prizes_of_shares([1, 2], 100)

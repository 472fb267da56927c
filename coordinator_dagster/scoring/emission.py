"""Emission: turning a ranked list of models into frac64 reward shares.

Shares are computed as exact fractions of FRAC64_MULTIPLIER, each is rounded to the nearest
frac64 unit (half to even, Python's `round`), and whatever rounding leaves over or takes too much
goes to the first entry (rank 1), as in the reference engine, so the shares of a list always add
up to exactly FRAC64_MULTIPLIER.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from coordinator_dagster.domain_types import (
    FRAC64_MULTIPLIER,
    CruncherReward,
    EmissionCheckpoint,
    ProviderReward,
)

# Reference tiers in frac64: rank 1 → 35 %, ranks 2–5 → 10 %, ranks 6–10 → 5 %, later ranks 0.
_TIER_SHARES = [350_000_000] + [100_000_000] * 4 + [50_000_000] * 5


def tier_of(rank: int | None) -> int:
    """The tier share (frac64) of one rank; no rank, or a rank past the tiers, has none."""
    if rank is None or not 1 <= rank <= len(_TIER_SHARES):
        return 0
    return _TIER_SHARES[rank - 1]


def round_shares(exact: Sequence[Fraction]) -> list[int]:
    """Exact shares in frac64 units → integers summing to exactly FRAC64_MULTIPLIER: each share
    rounded to the nearest unit (half to even), the difference to the total added to the first.

    With nine entries: 355,555,555.6 → 355,555,556 and 105,555,555.6 → 105,555,556; the rounded
    shares add up to 1,000,000,004, so rank 1 gets 355,555,552.
    """
    if not exact:
        return []
    out = [round(share) for share in exact]
    out[0] += FRAC64_MULTIPLIER - sum(out)
    return out


def shares_by_rank(ranks: Sequence[int | None]) -> list[int]:
    """The default split over entries with these ranks (in entry order, best first).

    Each entry gets its rank's tier share: entries sharing a rank each get that rank's tier, an
    entry without a rank gets none. What the tiers leave unallocated is split equally over all
    entries (ranked or not). Only ties can make the tiers ask for more than the pool (three
    entries tied at rank 1 ask for 105 %); then every tier share is scaled down by the same
    factor and nothing is unallocated. Each share is rounded and the remainder goes to the
    first entry (see `round_shares`).
    """
    if not ranks:
        return []
    tiers = [Fraction(tier_of(r)) for r in ranks]
    allocated = sum(tiers)
    if allocated > FRAC64_MULTIPLIER:
        return round_shares([tier * FRAC64_MULTIPLIER / allocated for tier in tiers])
    each = (FRAC64_MULTIPLIER - allocated) / len(ranks)
    return round_shares([tier + each for tier in tiers])


def tier_shares(entry_count: int) -> list[int]:
    """The default split for `entry_count` entries ranked 1, 2, 3, ... without ties."""
    return shares_by_rank(range(1, entry_count + 1))


def rank_of(entry: Mapping[str, Any]) -> int | None:
    """An entry's rank: a positive integer, or None for an entry without one."""
    value = entry.get("rank")
    if value is None:
        return None
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())  # not NaN, not ±inf
    if isinstance(value, bool) or not integral or value < 1:
        raise ValueError(f"entry {entry.get('model_id', '?')} has rank {value!r}; a rank is a positive integer or null")
    return int(value)


def cruncher_index_of(entry: Mapping[str, Any], position: int) -> int:
    """The on-chain index of an entry's cruncher; refuse to guess it from the list position."""
    index = entry.get("cruncher_index")
    if index is None:
        raise ValueError(
            f"ranked entry {position} ({entry.get('model_id', '?')}) has no cruncher_index: "
            "register the model's cruncher with its on-chain index"
        )
    return int(index)


def provider_rewards(provider: str | None) -> list[ProviderReward]:
    """A provider with a pubkey receives its whole pool; no provider, no rewards."""
    return [ProviderReward(provider=provider, reward_pct=FRAC64_MULTIPLIER)] if provider else []


def default_build_emission(
    ranked_entries: Sequence[Mapping[str, Any]],
    crunch_pubkey: str,
    compute_provider: str | None = None,
    data_provider: str | None = None,
) -> EmissionCheckpoint:
    """The reference engine's tiered emission: each entry paid by its `rank` (see
    `shares_by_rank`); entries come best first, the first one takes the rounding remainder."""
    shares = shares_by_rank([rank_of(entry) for entry in ranked_entries])
    return emission_from_shares(ranked_entries, shares, crunch_pubkey, compute_provider, data_provider)


def emission_from_shares(
    ranked_entries: Sequence[Mapping[str, Any]],
    shares: Sequence[int],
    crunch_pubkey: str,
    compute_provider: str | None,
    data_provider: str | None,
) -> EmissionCheckpoint:
    """An EmissionCheckpoint giving each ranked entry's cruncher its frac64 share."""
    return EmissionCheckpoint(
        crunch=crunch_pubkey,
        cruncher_rewards=[
            CruncherReward(cruncher_index=cruncher_index_of(entry, i), reward_pct=share)
            for i, (entry, share) in enumerate(zip(ranked_entries, shares, strict=True))
        ],
        compute_provider_rewards=provider_rewards(compute_provider),
        data_provider_rewards=provider_rewards(data_provider),
    )


# Contribution-weighted emission (the reference engine's option).
COMPOSITE_WEIGHTS = {"rank": 0.5, "contribution": 0.3, "diversity": 0.2}
FLOOR_SHARE = 0.01
# A component whose values spread less than this is constant (the reference's tolerance): float
# noise between equal metrics must not decide who gets the whole component.
CONSTANT_SPREAD = 1e-12


def _min_max(values: list[float | None]) -> list[float]:
    """Min-max normalised to [0, 1]. A missing value counts as the component's minimum; a
    component that is constant across entries (or missing everywhere) says nothing about them
    and gives every entry 0.5."""
    present = [v for v in values if v is not None]
    if not present or max(present) - min(present) < CONSTANT_SPREAD:
        return [0.5] * len(values)
    low, high = min(present), max(present)
    return [0.0 if v is None else (v - low) / (high - low) for v in values]


def entry_metric(entry: Mapping[str, Any], key: str) -> float | None:
    """A metric of a ranked entry: from its `result_summary` (the reference's shape), else from
    the entry itself (this node's checkpoint entries carry their metrics at the top level).
    Missing, null, non-numeric and non-finite values are None."""
    summary = entry.get("result_summary")
    value = summary.get(key) if isinstance(summary, Mapping) else None
    if value is None:
        value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def to_frac64(shares: Sequence[float]) -> list[int]:
    """Float shares (any positive scale) → frac64 integers summing to exactly FRAC64_MULTIPLIER.

    The floats are taken at their exact binary value, so the result does not depend on the order
    of float operations; each share is rounded and the remainder goes to the first (rank 1).
    """
    exact = [Fraction(s) for s in shares]
    total = sum(exact)
    return round_shares([FRAC64_MULTIPLIER * s / total for s in exact])


def contribution_weights(ranked_entries: Sequence[Mapping[str, Any]]) -> list[float]:
    """composite = 0.5·norm(1/rank) + 0.3·norm(contribution) + 0.2·norm(1 − model_correlation),
    then a floor of 1 % per entry and renormalisation. An entry without a rank counts as the
    lowest 1/rank (like any missing value, see `_min_max`)."""
    ranks = [rank_of(e) for e in ranked_entries]
    inverse_rank = [None if r is None else 1.0 / r for r in ranks]
    contribution = [entry_metric(e, "contribution") for e in ranked_entries]
    correlation = [entry_metric(e, "model_correlation") for e in ranked_entries]
    diversity = [None if c is None else 1.0 - c for c in correlation]
    parts = {
        "rank": _min_max(inverse_rank),
        "contribution": _min_max(contribution),
        "diversity": _min_max(diversity),
    }
    composite = [sum(COMPOSITE_WEIGHTS[k] * parts[k][i] for k in parts) for i in range(len(ranked_entries))]
    total = sum(composite)
    shares = [c / total for c in composite] if total > 0 else [1.0 / len(composite)] * len(composite)
    floored = [max(s, FLOOR_SHARE) for s in shares]
    return [s / sum(floored) for s in floored]


def contribution_weighted_emission(
    ranked_entries: Sequence[Mapping[str, Any]],
    crunch_pubkey: str,
    compute_provider: str | None = None,
    data_provider: str | None = None,
) -> EmissionCheckpoint:
    """Rewards by rank, ensemble contribution and diversity (set `build_emission` to this)."""
    shares = to_frac64(contribution_weights(ranked_entries)) if ranked_entries else []
    return emission_from_shares(ranked_entries, shares, crunch_pubkey, compute_provider, data_provider)

"""Emission: turning a ranked list of models into frac64 reward shares.

Integer arithmetic throughout, so the shares of a list always add up to exactly
FRAC64_MULTIPLIER; the rounding remainder goes to rank 1, as in the reference engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coordinator_dagster.domain_types import (
    FRAC64_MULTIPLIER,
    CruncherReward,
    EmissionCheckpoint,
    ProviderReward,
)

# Reference tiers in frac64: rank 1 → 35 %, ranks 2–5 → 10 %, ranks 6–10 → 5 %, later ranks 0.
_TIER_SHARES = [350_000_000] + [100_000_000] * 4 + [50_000_000] * 5


def tier_shares(entry_count: int) -> list[int]:
    """The default tier split for `entry_count` ranked entries, summing to FRAC64_MULTIPLIER.

    With fewer than ten entries the tiers leave part of the pool unallocated; that part is split
    equally over all entries (floored), and what flooring leaves goes to rank 1.
    """
    if entry_count <= 0:
        return []
    shares = [_TIER_SHARES[i] if i < len(_TIER_SHARES) else 0 for i in range(entry_count)]
    unallocated = FRAC64_MULTIPLIER - sum(shares)
    if unallocated > 0:
        each = unallocated // entry_count
        shares = [share + each for share in shares]
    shares[0] += FRAC64_MULTIPLIER - sum(shares)
    return shares


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
    """The reference engine's tiered emission over entries already sorted best first."""
    shares = tier_shares(len(ranked_entries))
    return EmissionCheckpoint(
        crunch=crunch_pubkey,
        cruncher_rewards=[
            CruncherReward(cruncher_index=cruncher_index_of(entry, i), reward_pct=share)
            for i, (entry, share) in enumerate(zip(ranked_entries, shares, strict=True))
        ],
        compute_provider_rewards=provider_rewards(compute_provider),
        data_provider_rewards=provider_rewards(data_provider),
    )

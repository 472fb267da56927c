"""The production reward rule of CrunchDAO's density competitions: top K per group, weighted
exp(α / rank) over K slots, unused shares retained.

Set a contract's `build_emission` to a `TopKPerGroup(...)` to use it; the reference engine's tier
rule (`coordinator_dagster.scoring.emission`) stays the default. The rule reads entries in the
published leaderboard shape (`group_ranking.published_entries`: `ranks_by_horizon` or
`ranks_by_param`, each group's window scores) and, for every group present:

1. candidates: the entries with a value of `score_key` (the anchor window by default) in the group;
2. the benchmark model (`benchmark_model_id`) is taken out: it is never paid and holds no slot;
   with `benchmark_cutoff`, only candidates scoring strictly better than it stay eligible (a group
   where the benchmark has no score then pays nobody: its slots are retained, with that reason);
3. one payout per participant: a participant (by cruncher_index, else cruncher, else model) keeps
   only its best model in the group;
4. the remaining candidates are ordered best first (score, then the group rank, then model_id)
   and take slots 1, 2, … K; candidates past K are outside the top K.

Amounts. The pool is split equally over the groups present; slot p of a group is worth
exp(α / p) / Σ_{j=1..K} exp(α / j) of the group's part, whether or not it is filled. A slot
nobody fills is retained (stays in the pool) and reported with its reason; nothing is
redistributed. A participant paid in several groups receives the sum.

Synth's production parameters (`SYNTH_PRODUCTION`): K = 4 per horizon (at most 8 participants
paid), α = 1, groups the two horizons with the pool split equally between them, ranked on the
7-day anchor score, the benchmark tracker excluded from payouts with no cutoff (the others are not
required to beat it). Sources: the Synth payout rules in crunchdao/docs
(real-time-competitions/competitions/synth.md, "Payouts": top 4 of each horizon, at most 8 players,
a participant on both horizons gets the sum) and the rewards configuration of a real checkpoint
published with crunch-synth (docs/rewards_function/example_data/config.json, checkpoint
CKP_20260608_120000: alpha 1.0, top_k_participants 4, use_benchmark_cutoff false, pool 392.79 USD).
The pool itself changes every week (mining rewards less fees); it is the checkpoint's to set.
Earlier Synth rules (January to June 2026: top 10, only models beating the benchmark paid) are
what `benchmark_cutoff=True` reproduces.

Exact arithmetic and rounding. exp(α / p) is computed with Python's `decimal` at 50 significant
digits (correctly rounded, so identical on every machine; α is taken as the decimal its `str()`
shows). The exact shares of all G × K slots add up to the whole; they are turned into integer
units (frac64, 1,000,000,000 = 100 %, and, given a pool amount, the pool's smallest unit) by the
largest remainder method: every slot gets the floor of its exact share, then the units left over
go one each to the slots with the largest fractional remainders (ties: the earlier group, then the
lower slot). Slot amounts therefore add up to exactly the total, each within one unit of its
exact share, and paid + retained = total exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coordinator_dagster.domain_types import FRAC64_MULTIPLIER, CruncherReward, EmissionCheckpoint
from coordinator_dagster.scoring.emission import provider_rewards

_CONTEXT = Context(prec=50)

# Why a candidate is not paid, and why a slot is retained.
BENCHMARK = "benchmark model: excluded from payouts"
NOT_BEST_OF_PARTICIPANT = "the participant's better model in this group is the one paid"
NOT_ABOVE_BENCHMARK = "does not score above the benchmark"
OUTSIDE_TOP_K = "outside the top K"
NO_SCORE = "no score in this group"
SLOT_UNFILLED = "no eligible participant for this slot"
SLOT_BENCHMARK_MISSING = "benchmark cutoff on and the benchmark has no score in this group"


def slot_weights(top_k: int, alpha: float | str | Decimal) -> list[Decimal]:
    """exp(α / p) for p = 1..K at 50 significant digits."""
    a = Decimal(str(alpha))
    return [_CONTEXT.exp(_CONTEXT.divide(a, Decimal(p))) for p in range(1, top_k + 1)]


def largest_remainder(exact: Sequence[Decimal | Fraction], total: int) -> list[int]:
    """Integers adding up to exactly `total`, each the floor of its non-negative exact value (the
    values add up to `total`) plus one unit for the largest fractional remainders; ties go to the
    earlier entry."""
    floors = [int(value) for value in exact]  # shares are non-negative: int() is the floor
    left = total - sum(floors)
    if left < 0 or left > len(exact):
        raise ValueError(f"exact shares add up to {sum(exact)}, not {total}")
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def slot_amounts(group_count: int, top_k: int, alpha: float | str | Decimal, total: int) -> list[list[int]]:
    """The integer amount of every slot: `total` split equally over the groups, then exp(α / p)
    over each group's K slots (largest remainder over all G × K slots at once)."""
    if group_count == 0:
        return []
    weights = slot_weights(top_k, alpha)
    denominator = _CONTEXT.multiply(Decimal(group_count), _CONTEXT.add(sum(weights[1:], weights[0]), Decimal(0)))
    exact = [_CONTEXT.divide(_CONTEXT.multiply(Decimal(total), w), denominator) for _ in range(group_count) for w in weights]
    # At 50 digits the exact shares add up to `total` within ~1e-40, so the floors leave between 0
    # and G × K units to hand out (see `largest_remainder`).
    flat = largest_remainder(exact, total)
    return [flat[g * top_k : (g + 1) * top_k] for g in range(group_count)]


def participant_of(entry: Mapping[str, Any]) -> str:
    """One participant per on-chain cruncher index; else per cruncher name; else per model."""
    if entry.get("cruncher_index") is not None:
        return f"index:{int(entry['cruncher_index'])}"
    cruncher = entry.get("cruncher") or entry.get("player_name")
    return f"cruncher:{cruncher}" if cruncher else f"model:{entry['model_id']}"


@dataclass(frozen=True)
class PayoutRow:
    """One line of a payout table: a slot (paid or retained) or a candidate left unpaid."""

    group: str
    slot: int | None
    status: Literal["paid", "retained", "unpaid"]
    model_id: str | None
    cruncher: str | None
    cruncher_index: int | None
    score: float | None
    reward_pct: int  # frac64 of the whole pool
    prize: int | None  # in the pool's smallest unit, when the pool amount is known
    reason: str | None


@dataclass(frozen=True)
class Payouts:
    """What the rule decided: the emission (frac64 per cruncher, the retained share) and the table."""

    emission: EmissionCheckpoint
    rows: list[PayoutRow]
    groups: list[str]
    pool_amount: int | None
    retained_pct: int
    retained_prize: int | None
    prizes: dict[int, int] = field(default_factory=dict)  # cruncher_index → prize


# Synth's production parameters (see the module docstring for the sources).
SYNTH_PRODUCTION: dict[str, Any] = {"top_k": 4, "alpha": 1.0, "group_by": "horizon", "score_key": "anchor", "benchmark_cutoff": False}


class TopKPerGroup(BaseModel):
    """The production rule as a contract option: `CrunchContract(build_emission=TopKPerGroup(...))`.

    Called like any `build_emission`, it returns the EmissionCheckpoint (cruncher rewards plus the
    retained share, which together make exactly 1,000,000,000); `payouts()` also gives the table.
    """

    model_config = ConfigDict(frozen=True)

    top_k: int = Field(default=4, gt=0, le=1000, description="paid slots per group")
    alpha: float = Field(default=1.0, ge=0, le=100, description="weight of slot p: exp(alpha / p)")
    group_by: Literal["horizon", "param"] = Field(default="horizon", description="groups: horizons, or asset × horizon")
    score_key: str = Field(default="anchor", description="the window score that orders each group (published name)")
    direction: Literal["desc", "asc"] = "desc"
    benchmark_model_id: str | None = Field(default=None, description="never paid; its score is the cutoff")
    benchmark_cutoff: bool = Field(default=False, description="pay only models scoring strictly better than the benchmark")
    pool_amount: int | None = Field(default=None, ge=0, description="the pool in its smallest unit (a checkpoint may override it)")
    pool_unit: str = Field(default="", description="what one unit of pool_amount is, e.g. 'USDC micro-unit (1e-6)'")

    def __call__(
        self,
        ranked_entries: Sequence[Mapping[str, Any]],
        crunch_pubkey: str,
        compute_provider: str | None = None,
        data_provider: str | None = None,
    ) -> EmissionCheckpoint:
        return self.payouts(ranked_entries, crunch_pubkey, compute_provider, data_provider).emission

    def _groups(self, entries: Sequence[Mapping[str, Any]]) -> list[str]:
        field_name = "ranks_by_horizon" if self.group_by == "horizon" else "ranks_by_param"
        keys = {key for entry in entries for key in (entry.get(field_name) or {})}

        def order(key: str) -> tuple:
            subject, _, horizon = key.rpartition(":")
            return (int(horizon) if horizon.isdigit() else horizon, subject)

        return sorted(keys, key=order)

    def _score(self, entry: Mapping[str, Any], group: str) -> tuple[float | None, int | None]:
        field_name = "ranks_by_horizon" if self.group_by == "horizon" else "ranks_by_param"
        cell = (entry.get(field_name) or {}).get(group) or {}
        value = (cell.get("score") or {}).get(self.score_key)
        return (None if value is None else float(value)), cell.get("rank")

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "desc" else a < b

    def _decide(self, entries: Sequence[Mapping[str, Any]], group: str) -> tuple[list[Mapping[str, Any]], list[tuple[Mapping[str, Any], str]], str]:
        """(paid best first, [(entry, reason) unpaid], reason for the group's unfilled slots)."""
        unpaid: list[tuple[Mapping[str, Any], str]] = []
        scored = []
        benchmark_score = None
        for entry in entries:
            score, group_rank = self._score(entry, group)
            if score is None:
                continue
            if self.benchmark_model_id is not None and entry.get("model_id") == self.benchmark_model_id:
                benchmark_score = score
                unpaid.append((entry, BENCHMARK))
                continue
            scored.append((entry, score, group_rank))
        sign = -1.0 if self.direction == "desc" else 1.0
        scored.sort(key=lambda t: (sign * t[1], t[2] if t[2] is not None else float("inf"), str(t[0].get("model_id"))))
        slot_reason = SLOT_UNFILLED
        if self.benchmark_cutoff and benchmark_score is None:
            unpaid += [(e, SLOT_BENCHMARK_MISSING) for e, _, _ in scored]
            return [], unpaid, SLOT_BENCHMARK_MISSING
        eligible, seen = [], set()
        for entry, score, _ in scored:
            who = participant_of(entry)
            if who in seen:
                unpaid.append((entry, NOT_BEST_OF_PARTICIPANT))
                continue
            seen.add(who)
            if self.benchmark_cutoff and not self._better(score, benchmark_score):
                unpaid.append((entry, NOT_ABOVE_BENCHMARK))
                continue
            eligible.append(entry)
        unpaid += [(e, OUTSIDE_TOP_K) for e in eligible[self.top_k :]]
        return eligible[: self.top_k], unpaid, slot_reason

    def payouts(
        self,
        ranked_entries: Sequence[Mapping[str, Any]],
        crunch_pubkey: str,
        compute_provider: str | None = None,
        data_provider: str | None = None,
        pool_amount: int | None = None,
    ) -> Payouts:
        """The full decision: emission, payout table, retained share and, with a pool amount
        (this argument, else the rule's `pool_amount`), every prize in the pool's smallest unit."""
        pool = self.pool_amount if pool_amount is None else pool_amount
        if pool is not None and pool < 0:
            raise ValueError(f"pool amount {pool} is negative")
        groups = self._groups(ranked_entries)
        shares = slot_amounts(len(groups), self.top_k, self.alpha, FRAC64_MULTIPLIER)
        prizes = slot_amounts(len(groups), self.top_k, self.alpha, pool) if pool is not None else None
        rows: list[PayoutRow] = []
        by_index: dict[int, int] = {}
        prize_by_index: dict[int, int] = {}
        order: list[int] = []
        for g, group in enumerate(groups):
            paid, unpaid, slot_reason = self._decide(ranked_entries, group)
            for p in range(self.top_k):
                share = shares[g][p]
                prize = prizes[g][p] if prizes is not None else None
                if p < len(paid):
                    entry = paid[p]
                    index = entry.get("cruncher_index")
                    if index is None:
                        raise ValueError(
                            f"model {entry.get('model_id')} is paid in group {group} but has no cruncher_index: "
                            "register the model's cruncher with its on-chain index"
                        )
                    index = int(index)
                    if index not in by_index:
                        order.append(index)
                    by_index[index] = by_index.get(index, 0) + share
                    if prize is not None:
                        prize_by_index[index] = prize_by_index.get(index, 0) + prize
                    rows.append(self._row(group, p + 1, "paid", entry, share, prize, None))
                else:
                    rows.append(PayoutRow(group, p + 1, "retained", None, None, None, None, share, prize, slot_reason))
            rows += [self._row(group, None, "unpaid", entry, 0, 0 if prizes is not None else None, reason) for entry, reason in unpaid]
        # Whatever no slot pays stays in the pool: with no group at all, the whole of it.
        retained = FRAC64_MULTIPLIER - sum(by_index.values())
        emission = EmissionCheckpoint(
            crunch=crunch_pubkey,
            cruncher_rewards=[CruncherReward(cruncher_index=i, reward_pct=by_index[i]) for i in order],
            retained_pct=retained,
            compute_provider_rewards=provider_rewards(compute_provider),
            data_provider_rewards=provider_rewards(data_provider),
        )
        retained_prize = None if pool is None else pool - sum(prize_by_index.values())
        return Payouts(emission, rows, groups, pool, retained, retained_prize, prize_by_index)

    def _row(self, group: str, slot: int | None, status: str, entry: Mapping[str, Any], share: int, prize: int | None, reason: str | None) -> PayoutRow:
        score, _ = self._score(entry, group)
        index = entry.get("cruncher_index")
        return PayoutRow(
            group, slot, status, entry.get("model_id"), entry.get("cruncher") or entry.get("player_name"),
            None if index is None else int(index), score, share, prize, reason,
        )

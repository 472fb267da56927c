"""Absolute payouts: a checkpoint's payout table, in frac64 and in the pool's smallest unit.

A checkpoint may carry a pool amount (an integer count of the pool's smallest unit, e.g. USDC
micro-units); every paid and retained share then also has its prize in that unit. The production
rule (`top_k_rewards.TopKPerGroup`) builds its own table, slot by slot. For any other emission
(the reference's tiers, contribution weighting, a custom callable) the table has one paid row per
cruncher reward and, when the emission retains a share, one retained row; prizes are
pool × reward_pct / 1,000,000,000 exactly, made integers by the largest remainder method over
those rows (floors first, the units left over to the largest fractional remainders, ties to the
earlier row), so the prizes and the retained prize add up to exactly the pool.

`prize_file` turns those rows into the JSON Lines prize file CrunchDAO's coordinator CLI creates an
on-chain checkpoint from: one line per rewarded model, `{"timestamp": <period end, ms>, "model":
"<model id>", "prize": <integer, the pool's smallest unit>}`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import polars as pl

from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake.schemas import CHECKPOINT_PAYOUTS
from coordinator_dagster.scoring.top_k_rewards import PayoutRow, largest_remainder


def prizes_of_shares(shares: Sequence[int], pool_amount: int) -> list[int]:
    """frac64 shares summing to FRAC64_MULTIPLIER → integer prizes summing to `pool_amount`.

    Example: pool 100 over shares 333,333,334 / 333,333,333 / 333,333,333 → exact 33.3333334,
    33.3333333, 33.3333333: floors 33 each, the one unit left goes to the largest remainder (the
    first) → 34, 33, 33.
    """
    if sum(shares) != FRAC64_MULTIPLIER:
        raise ValueError(f"shares add up to {sum(shares)}, not {FRAC64_MULTIPLIER}")
    exact = [Fraction(pool_amount * share, FRAC64_MULTIPLIER) for share in shares]
    return largest_remainder(exact, pool_amount)


def emission_rows(emission: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], pool_amount: int | None) -> list[PayoutRow]:
    """The payout table of an emission that has no slots of its own (see the module)."""
    rewards = list(emission.get("cruncher_rewards", []))
    retained = int(emission.get("retained_pct", 0))
    if not rewards and not retained:
        return []
    best: dict[int, Mapping[str, Any]] = {}
    for entry in entries:
        index = entry.get("cruncher_index")
        if index is not None and int(index) not in best:
            best[int(index)] = entry  # entries come best first
    shares = [int(r["reward_pct"]) for r in rewards] + ([retained] if retained else [])
    prizes: list[int | None] = prizes_of_shares(shares, pool_amount) if pool_amount is not None else [None] * len(shares)
    rows = []
    for slot, (reward, prize) in enumerate(zip(rewards, prizes, strict=False), start=1):
        entry = best.get(int(reward["cruncher_index"]), {})
        value = entry.get("ranking_value")
        rows.append(
            PayoutRow("", slot, "paid", entry.get("model_id"), entry.get("cruncher"), int(reward["cruncher_index"]),
                      None if value is None else float(value), int(reward["reward_pct"]), prize, None)
        )
    if retained:
        rows.append(PayoutRow("", None, "retained", None, None, None, None, retained, prizes[-1], "retained by the emission rule"))
    return rows


def payout_frame(checkpoint_id: str, rows: Sequence[PayoutRow], pool_amount: int | None, pool_unit: str) -> pl.DataFrame:
    """The rows as the `checkpoint_payouts` table stores them."""
    frame = pl.DataFrame(
        {
            "checkpoint_id": [checkpoint_id] * len(rows),
            "group_key": [r.group for r in rows],
            "slot": [r.slot for r in rows],
            "status": [r.status for r in rows],
            "model_id": [r.model_id for r in rows],
            "cruncher": [r.cruncher for r in rows],
            "cruncher_index": [r.cruncher_index for r in rows],
            "score": [r.score for r in rows],
            "reward_pct": [r.reward_pct for r in rows],
            "prize": [r.prize for r in rows],
            "pool_amount": [pool_amount] * len(rows),
            "pool_unit": [pool_unit] * len(rows),
            "reason": [r.reason for r in rows],
        },
        schema=CHECKPOINT_PAYOUTS,
    )
    return frame


def payout_markdown(frame: pl.DataFrame) -> str:
    """The payout table for the Dagster UI: slots per group, then a total row (it must read 100 %)."""
    if frame.is_empty():
        return "_no payouts in this period_"
    head = ["group", "slot", "status", "model", "cruncher", "score", "share", "prize", "reason"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in frame.iter_rows(named=True):
        cells = [
            row["group_key"] or "all", "" if row["slot"] is None else str(row["slot"]), row["status"], row["model_id"] or "",
            row["cruncher"] or "", "" if row["score"] is None else f"{row['score']:.4f}",
            f"{100 * row['reward_pct'] / FRAC64_MULTIPLIER:.4f} %", "" if row["prize"] is None else str(row["prize"]), row["reason"] or "",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    paid = frame.filter(pl.col("status") == "paid")
    retained = frame.filter(pl.col("status") == "retained")
    total_pct = (paid["reward_pct"].sum() + retained["reward_pct"].sum()) * 100 / FRAC64_MULTIPLIER
    lines.append(
        f"\n**paid** {paid['reward_pct'].sum():,} + **retained** {retained['reward_pct'].sum():,} frac64 = {total_pct:.4f} %"
        + ("" if frame["pool_amount"][0] is None else f"; prizes {paid['prize'].sum():,} + retained {retained['prize'].sum():,} = pool {frame['pool_amount'][0]:,} {frame['pool_unit'][0]}")
    )
    return "\n".join(lines)


def prize_file(emission: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], pool_amount: int, period_end: dt.datetime) -> list[dict[str, Any]]:
    """The prize file's lines: the paid rows of `emission_rows`, each cruncher's prize under the
    model that earned it (its best-ranked entry). With nothing retained the prizes add up to
    exactly `pool_amount`; a retained share's prize is left out (it stays in the pool).

    Example: pool 1,000,000 over shares 600,000,000 / 400,000,000 at period end
    2026-11-22T00:00Z → {"timestamp": 1795305600000, "model": "m1", "prize": 600000}, then
    {"timestamp": 1795305600000, "model": "m2", "prize": 400000}.
    """
    if pool_amount < 0:
        raise ValueError(f"the pool must not be negative, not {pool_amount}")
    timestamp = int(period_end.timestamp() * 1000)
    lines = []
    for row in emission_rows(emission, entries, pool_amount):
        if row.status != "paid":
            continue
        if row.model_id is None:
            raise ValueError(f"cruncher {row.cruncher_index} has a reward but no ranked model in the checkpoint's entries")
        lines.append({"timestamp": timestamp, "model": row.model_id, "prize": row.prize})
    return lines


def prize_file_text(lines: Sequence[Mapping[str, Any]]) -> str:
    """JSON Lines, keys in the chain tool's order, one line per model."""
    return "".join(json.dumps({"timestamp": line["timestamp"], "model": line["model"], "prize": line["prize"]}) + "\n" for line in lines)

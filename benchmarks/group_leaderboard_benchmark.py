"""Leaderboards per group at Synth's scale: prints how long `group_leaderboard` takes over a week
of round scores, and the top-K payout over its published entries.

A week of Synth: 13 assets × 24 rounds a day at 24 h, 5 assets × 120 rounds a day at 1 h, for
`--models` models (default 200): about 1.28 million round scores.

    .venv/bin/python benchmarks/group_leaderboard_benchmark.py [--models 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import polars as pl

from coordinator_dagster.scoring import group_ranking
from coordinator_dagster.scoring.top_k_rewards import TopKPerGroup

ASSETS_24H = ["BTC", "ETH", "SOL", "XAUT", "SPYX", "SP500", "NVDAX", "TSLAX", "AAPLX", "GOOGLX", "XRP", "HYPE", "WTIOIL"]
ASSETS_1H = ["BTC", "SOL", "ETH", "XRP", "HYPE"]
WINDOWS = {"score_recent": 24, "score_steady": 72, "score_anchor": 168}


def week_of_rounds(models: int, seed: int = 1) -> pl.DataFrame:
    start = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    rounds = [(a, 86400, start + dt.timedelta(hours=h)) for a in ASSETS_24H for h in range(7 * 24)]
    rounds += [(a, 3600, start + dt.timedelta(minutes=12 * k)) for a in ASSETS_1H for k in range(7 * 120)]
    subjects, horizons, times = zip(*rounds, strict=True)
    n = len(rounds)
    frame = pl.DataFrame({"subject": list(subjects), "horizon_seconds": list(horizons), "performed_at": list(times)})
    ids = pl.DataFrame({"model_id": [f"m{i:04d}" for i in range(models)]})
    out = ids.join(frame, how="cross")
    rng = np.random.default_rng(seed)
    return out.with_columns(pl.Series("score", rng.random(n * models)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    args = parser.parse_args()
    rounds = week_of_rounds(args.models)
    began = time.perf_counter()
    board = group_ranking.group_leaderboard(rounds, WINDOWS, "score_anchor")
    ranked = time.perf_counter() - began
    models = pl.DataFrame({"model_id": rounds["model_id"].unique().sort(), "name": None, "cruncher": None})
    models = models.with_columns(pl.int_range(pl.len()).alias("cruncher_index"))
    began = time.perf_counter()
    entries = group_ranking.published_entries(board, list(WINDOWS), models)
    nested = time.perf_counter() - began
    began = time.perf_counter()
    TopKPerGroup(top_k=4, benchmark_model_id="m0000").payouts(entries, "pk", pool_amount=392_786_596)
    paid = time.perf_counter() - began
    print(f"{rounds.height:,} round scores, {args.models} models → {board.height:,} leaderboard rows")
    print(f"group_leaderboard {ranked:.2f} s; published entries {nested:.2f} s; top-K payout {paid:.3f} s")


if __name__ == "__main__":
    main()

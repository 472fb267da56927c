"""`coordinator demo` for density competitions (a contract with prediction profiles, e.g. Synth).

Runs the contract's profiles over synthetic one-minute prices for their assets (the node's seeded
synthetic feed), with the models of MODELS_MANIFEST loaded in process: every model gets the
warm-up history on its first tick, then the new prices before each round; every round asks every
model, within the profile's deadline; once the truth is in (prices run one longest horizon past
the window), every round is scored (CRPS on the participant package's grid, normalised per round)
and the table `density_round_scores` is written to the demo's lake. Returns that table; the
summary prints the mean normalised score per model per horizon and the asset-weighted total.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.feeds.synthetic import generate_records
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.density_rounds import DensityRoundDriver
from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.partitions import window_keys_between
from coordinator_dagster.prediction_profiles import density_rounds, warm_up_seconds
from coordinator_dagster.scoring.callables import resolve_dotted
from coordinator_dagster.scoring.density.rounds import DensityAnswer, round_scores, weighted_overall

MINUTE = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class DensityDemoResult:
    scores: pl.DataFrame  # DENSITY_ROUND_SCORES rows of the window
    rounds: int
    seconds: float
    lake_root: Path
    warm_up_prices: dict[str, int]  # per model: prices in its first tick


def synthetic_prices(assets: list[str], start: dt.datetime, end: dt.datetime, seed: int) -> pl.DataFrame:
    """One price per minute per asset in [start, end]: the close of the synthetic feed's one-minute
    candle that ends at that minute."""
    frames = [
        generate_records(seed=seed, subject=asset, kind="candle", granularity="1m", start=start - MINUTE, end=end)
        .select("subject", (pl.col("ts_event") + pl.duration(minutes=1)).alias("ts_event"), pl.col("close").alias("price"))
        for asset in assets
    ]
    return pl.concat(frames).sort("subject", "ts_event")


def load_trackers(manifest: str | Path | None) -> dict[str, Any]:
    """The manifest's models, instantiated in this process (entrypoint `module:Class`)."""
    trackers = {}
    for spec in load_manifest(manifest):
        if spec.path and spec.path not in sys.path:
            sys.path.insert(0, spec.path)
        try:
            factory = resolve_dotted(spec.entrypoint)
        except ImportError as exc:
            raise RuntimeError(
                f"model {spec.model_id}: cannot import {spec.entrypoint} ({exc}); install what the workspace's "
                "requirements.txt lists into the coordinator's environment"
            ) from exc
        trackers[spec.model_id] = factory()
    return trackers


def run_density_demo(
    home: Path, start: dt.datetime, days: int, contract: CrunchContract, manifest: str | Path | None,
    seed: int = 7, report: Callable[[str], None] | None = None,
) -> DensityDemoResult:
    began = time.perf_counter()
    profiles = [p for p in contract.prediction_profiles if p.active]
    assets = sorted({a for p in profiles for a in p.assets})
    end = start + dt.timedelta(days=days)
    truth_end = end + dt.timedelta(seconds=max(p.horizon_seconds for p in profiles))
    prices = synthetic_prices(assets, start - dt.timedelta(seconds=warm_up_seconds(profiles)), truth_end, seed)
    rounds = density_rounds(profiles, start, end)
    by_name = {p.name: p for p in profiles}
    driver = DensityRoundDriver(load_trackers(manifest), profiles)
    answers: list[DensityAnswer] = []
    try:
        times = rounds["performed_at"].unique(maintain_order=True).to_list()
        for i, now in enumerate(times):
            if report and i % 10 == 0:
                report(f"\r[{i}/{len(times)}] round {now:%Y-%m-%d %H:%M}   ")
            driver.tick(prices, now)
            for row in rounds.filter(pl.col("performed_at") == now).iter_rows(named=True):
                answers += driver.ask(by_name[row["profile"]], row["subject"], now)
    finally:
        driver.close()
    if report:
        report(f"\r[{len(times)}/{len(times)}] scoring {len(answers)} answers\n")
    scores = round_scores(answers, prices)
    lake = Lake.for_contract(home, contract)
    lake.write_windows("density_round_scores", scores, "performed_at", window_keys_between(start, end))
    warm = {}
    for model_id, _, count in driver.ticks:
        warm.setdefault(model_id, count)
    return DensityDemoResult(scores, rounds.height, time.perf_counter() - began, lake.root, warm)


def format_density_result(result: DensityDemoResult) -> str:
    scores = result.scores
    by_horizon = (
        scores.group_by("model_id", "profile").agg(pl.col("score").mean())
        .pivot(on="profile", index="model_id", values="score").sort("model_id")
    )
    overall = weighted_overall(scores, "score", dict(zip(scores["subject"], scores["asset_weight"])))
    statuses = dict(scores.group_by("status").len().sort("status").iter_rows())
    table = by_horizon.join(overall.rename({"score": "overall (asset-weighted)"}), on="model_id")
    lines = [
        f"{result.rounds} rounds, {scores.height} answers {statuses}, in {result.seconds:.1f} s",
        f"warm-up: first tick per model carried {result.warm_up_prices} prices",
        "mean normalised score per model and horizon (1 = best of each round):",
        str(table.with_columns(pl.selectors.float().round(4))),
        f"density_round_scores written under {result.lake_root}",
    ]
    return "\n".join(lines)

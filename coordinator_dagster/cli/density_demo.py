"""`coordinator demo` for density competitions (a contract with prediction profiles, e.g. Synth).

Runs the contract's profiles over synthetic one-minute prices for their assets (the node's seeded
synthetic feed), with the models of MODELS_MANIFEST loaded in process: every model gets the
warm-up history on its first tick, then the new prices before each round; every round asks every
model, within the profile's deadline; once the truth is in (prices run one longest horizon past
the window), every round is scored (CRPS on the participant package's grid, normalised per round)
and the table `density_round_scores` is written to the demo's lake. From there on the demo is
the node's own pipeline: the manifest's models are registered (`models`), and the Dagster assets
`group_leaderboard` (overall, per horizon, per asset × horizon) and `checkpoints` (one per
checkpoint period the window touches, paid by the contract's `build_emission`, e.g. the
production rule `TopKPerGroup`, with its `checkpoint_payouts` table) are materialized in process
over that lake, with the clock pinned past the last period. The summary prints the mean normalised
score per model per horizon, the leaderboards by horizon and by asset × horizon, and each
checkpoint's payout table, as the Dagster UI draws them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from coordinator_dagster.models.prediction_rows import registry
from coordinator_dagster.cli.demo import checkpoint_clock, demo_definitions, period_keys_between, run_steps
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.feeds.synthetic import generate_records
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.density_rounds import DensityRoundDriver
from coordinator_dagster.models.density_rounds import load_trackers as load_spec_trackers
from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.partitions import window_keys_between
from coordinator_dagster.prediction_profiles import density_rounds, warm_up_seconds
from coordinator_dagster.scoring import group_ranking, payouts
from coordinator_dagster.scoring.density.rounds import DensityAnswer, round_scores, weighted_overall

MINUTE = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class DensityDemoResult:
    scores: pl.DataFrame  # DENSITY_ROUND_SCORES rows of the window
    rounds: int
    seconds: float
    lake_root: Path
    warm_up_prices: dict[str, int]  # per model: prices in its first tick
    leaderboard: pl.DataFrame  # the group_leaderboard asset's table
    windows: list[str]  # the contract's aggregation windows (the leaderboard's value columns)
    checkpoints: pl.DataFrame  # the checkpoints built for the periods the window touches
    payouts: pl.DataFrame  # their checkpoint_payouts rows


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
    """The manifest's models, instantiated in this process."""
    return load_spec_trackers(load_manifest(manifest))


def run_density_demo(
    home: Path, start: dt.datetime, days: int, contract: CrunchContract, manifest: str | Path | None,
    seed: int = 7, report: Callable[[str], None] | None = None, instance: dg.DagsterInstance | None = None,
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

    # The checkpoint periods holding the window must have ended, and every round resolved, for
    # the checkpoints to exist: the pipeline's clock sits past both.
    partitions_start = start - dt.timedelta(hours=1)
    periods, now = checkpoint_clock(contract, partitions_start, end, truth_end)
    lake.write("models", registry(load_manifest(manifest), {}, lake.read("models"), now))
    period_keys = period_keys_between(periods, start, end, now)
    assets, resources = demo_definitions(home, contract, seed, partitions_start, now)
    steps: list[tuple[str, list[str], dict[str, str] | str]] = [("leaderboards by group", ["group_leaderboard"], {})]
    steps += [(f"checkpoint {key}", ["checkpoints"], key) for key in period_keys]
    run_steps(assets, resources, instance or dg.DagsterInstance.ephemeral(), steps, report)
    return DensityDemoResult(
        scores, rounds.height, time.perf_counter() - began, lake.root, warm,
        leaderboard=lake.read("group_leaderboard"),
        windows=list(contract.aggregation.windows),
        checkpoints=lake.read_paths("checkpoints", [lake.partition_path("checkpoints", k) for k in period_keys]),
        payouts=lake.read_paths("checkpoint_payouts", [lake.partition_path("checkpoint_payouts", k) for k in period_keys]),
    )


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
        "",
        "Leaderboard by horizon (group_leaderboard; the API serves it at /reports/leaderboard/ranks):",
        group_ranking.markdown_group_tables(result.leaderboard, result.windows, group_ranking.HORIZON),
        "",
        "Leaderboard by asset × horizon (top 3 of each):",
        group_ranking.markdown_group_tables(result.leaderboard, result.windows, group_ranking.PARAM, limit=3),
    ]
    for row in result.checkpoints.iter_rows(named=True):
        table = result.payouts.filter(pl.col("checkpoint_id") == row["checkpoint_id"])
        lines += [
            "",
            f"Checkpoint {row['checkpoint_id']} ({row['period_start']:%Y-%m-%d} → {row['period_end']:%Y-%m-%d}), {row['status']}, "
            f"ranked by {row['ranking_key']}; payouts (/reports/checkpoints/{row['checkpoint_id']}/payouts):",
            payouts.payout_markdown(table),
        ]
    return "\n".join(lines)

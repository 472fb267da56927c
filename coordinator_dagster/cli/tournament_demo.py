"""`coordinator demo` for a tournament contract: a few rounds of seeded synthetic houses driven
through the node's Dagster assets (`build_tournament_defs`), as the upload sensor would drive
them, then the leaderboard and the last round's checkpoint printed.

Each simulated day is one round: its houses (area, bedrooms, bathrooms, a location factor) are
uploaded as `features.json`, the round is predicted by the workspace's models, then its sale
prices are uploaded as `truth.json` and the round is scored. A few houses carry a sample that
the example models cannot price (no area), so the demo shows FAILED predictions scored around.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl

from assets.tournament import INFERENCE_ASSETS, SCORING_ASSETS
from coordinator_dagster import tournament_rounds as rounds
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.definitions import build_tournament_defs
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.partitions import TOURNAMENT_ROUNDS
from coordinator_dagster.settings import Settings
from coordinator_dagster.tournament_lake import RoundLake
from resources import ClockResource

HOUSES_PER_ROUND = 25
# The runs' step-by-step log is for the UI; the demo prints its own summary.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class TournamentDemoResult:
    lake_root: Path
    round_ids: list[str]
    statuses: dict[str, int]
    leaderboard: pl.DataFrame
    checkpoint: dict
    seconds: float


def synthetic_round(rng: random.Random, count: int) -> tuple[list[dict], list[dict]]:
    """(features, truth) of `count` houses with sample ids; the price grows with the area and
    the location factor, with noise. Every tenth house comes without its area."""
    features, truth = [], []
    for i in range(count):
        sqft = round(rng.uniform(700, 3600), 0)
        bedrooms = max(1, min(6, round(sqft / 600 + rng.uniform(-1, 1))))
        bathrooms = max(1.0, round(bedrooms * 0.75 * 2) / 2)
        location = round(rng.uniform(0.7, 1.6), 2)
        price = round((60_000 + 165 * sqft + 12_000 * bedrooms) * location * rng.uniform(0.9, 1.1), -2)
        sample = {"sample_id": f"house-{i + 1:03d}", "bedrooms": float(bedrooms), "bathrooms": bathrooms, "location_factor": location}
        if i % 10 != 9:
            sample["living_area_sqft"] = sqft
        features.append(sample)
        truth.append({"sample_id": sample["sample_id"], "price": price})
    return features, truth


def _upload(store: RoundLake, round_id: str, kind: str, data: list[dict]) -> None:
    path = store.upload_path(round_id, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def run_tournament_demo(
    home: Path, start: dt.datetime, days: int, contract: CrunchContract, manifest: str, *, seed: int = 7, instance: dg.DagsterInstance | None = None
) -> TournamentDemoResult:
    began = time.perf_counter()
    store = RoundLake(home)
    rng = random.Random(seed)
    instance = instance or dg.DagsterInstance.ephemeral()
    settings = Settings(home=home, models_manifest=manifest)
    round_ids = []
    for day in range(days):
        round_id = f"round-{start + dt.timedelta(days=day):%Y-%m-%d}"
        round_ids.append(round_id)
        features, truth = synthetic_round(rng, HOUSES_PER_ROUND)
        instance.add_dynamic_partitions(TOURNAMENT_ROUNDS.name, [round_id])
        for kind, data, hour in (("features", features, 9), ("truth", truth, 17)):
            _upload(store, round_id, kind, data)
            at = start + dt.timedelta(days=day, hours=hour)
            defs = build_tournament_defs(settings=settings, contract=contract, resource_overrides={"clock": ClockResource(fixed_now=at.isoformat())})
            selection = INFERENCE_ASSETS if kind == "features" else SCORING_ASSETS
            result = defs.resolve_job_def("tournament_round_job").execute_in_process(
                instance=instance, partition_key=round_id, asset_selection=selection, run_config=QUIET
            )
            if not result.success:
                raise RuntimeError(f"the demo's {kind} run of {round_id} failed")
    statuses: dict[str, int] = {}
    for round_id in round_ids:
        for status, count in rounds.status(store, round_id)["by_status"].items():
            statuses[status] = statuses.get(status, 0) + count
    checkpoint = store.read_round("checkpoints", round_ids[-1]).row(0, named=True)
    return TournamentDemoResult(store.root, round_ids, statuses, store.read_leaderboard(), checkpoint, time.perf_counter() - began)


def format_tournament_result(result: TournamentDemoResult) -> str:
    counted = ", ".join(f"{count:,} {status}" for status, count in sorted(result.statuses.items()))
    lines = ["", f"Leaderboard of the lake {result.lake_root} ({len(result.round_ids)} rounds; predictions: {counted})"]
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=160, tbl_hide_dataframe_shape=True):
        lines.append(str(result.leaderboard))
    row = result.checkpoint
    emission = json.loads(row["emission"])
    entries = {e["cruncher_index"]: e for e in json.loads(row["entries"])}
    lines.append(f"\nCheckpoint {row['checkpoint_id']} (round {row['round_id']}), {row['status']}, merkle root {row['merkle_root']}")
    for reward in emission["cruncher_rewards"]:
        entry = entries.get(reward["cruncher_index"], {})
        value = entry.get("value")
        lines.append(
            f"  rank {entry.get('rank', '?'):>2}  {entry.get('model_id', '?'):<16} cruncher #{reward['cruncher_index']:<3}"
            f" round score {value if value is None else f'{value:.4f}'}  reward_pct {reward['reward_pct']:>13,}"
            f"  ({100 * reward['reward_pct'] / FRAC64_MULTIPLIER:.2f} %)"
        )
    lines.append(f"  total {sum(r['reward_pct'] for r in emission['cruncher_rewards']):,} (must be {FRAC64_MULTIPLIER:,})")
    lines.append(f"\nDemo finished in {result.seconds:.1f} s")
    return "\n".join(lines)

"""`build_defs()`: the one place the Dagster code location is assembled; `defs` for workspace.yaml.

Settings and the contract are read when `build_defs` runs, never at import of the other modules;
tests call `build_defs(resource_overrides=...)` instead of patching globals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from assets import build_checkpoints_asset, window_assets
from assets.leaderboard import leaderboard
from coordinator_dagster.contracts import CrunchContract, load_contract
from coordinator_dagster.partitions import CHECKPOINT_PARTITIONS
from coordinator_dagster.settings import Settings, load_settings
from resources import ClockResource, ContractResource, InProcessModelRunner, LakeResource, SyntheticFeed
from sensors import default_jobs, default_sensors
from sensors.schedules import build_checkpoint_schedule, build_ingest_schedule


def default_resources(settings: Settings) -> dict[str, Any]:
    if settings.feed_source != "synthetic":
        raise ValueError(f"FEED_SOURCE={settings.feed_source!r} is not available; supported: synthetic")
    return {
        "lake": LakeResource(home=str(settings.home)),
        "contract": ContractResource(),
        "feed": SyntheticFeed(
            subjects=settings.feed_subjects,
            kind=settings.feed_kind,
            granularity=settings.feed_granularity,
            seed=settings.synthetic_seed,
        ),
        "model_runner": InProcessModelRunner(manifest=settings.models_manifest, timeout_seconds=settings.model_timeout_seconds),
        "clock": ClockResource(),
    }


def build_defs(
    *,
    resource_overrides: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    contract: CrunchContract | None = None,
) -> dg.Definitions:
    settings = settings or load_settings()
    contract = contract or load_contract()
    resources = {**default_resources(settings), **(resource_overrides or {})}
    period_partitions = CHECKPOINT_PARTITIONS[contract.checkpoint_period]
    checkpoints = build_checkpoints_asset(period_partitions)
    checkpoint_job = next(job for job in default_jobs if job.name == "checkpoint_job")
    return dg.Definitions(
        assets=[*window_assets, leaderboard, checkpoints],
        jobs=default_jobs,
        sensors=default_sensors,
        schedules=[build_ingest_schedule(resources["feed"].granularity), build_checkpoint_schedule(checkpoint_job, period_partitions)],
        resources=resources,
        executor=dg.in_process_executor,
    )


__all__ = ["build_defs"]

"""`build_defs()`: the one place the Dagster code location is assembled; `defs` for workspace.yaml.

Settings and the contract are read when `build_defs` runs, never at import of the other modules;
tests call `build_defs(resource_overrides=...)` instead of patching globals. The contract is read
once per call and that one object goes everywhere: the checkpoint partitions and schedule, and the
`contract` resource every asset and sensor receives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from assets import build_audit_bundle_asset, build_checkpoints_asset, window_assets
from assets.density import density_round_scores, density_window_assets
from assets.feeds import feed_records
from assets.group_leaderboard import build_group_leaderboard_asset, group_leaderboard
from assets.leaderboard import leaderboard
from assets.what_if import what_if_report
from assets.retention import build_feed_retention_asset
from assets.trading import trading_window_assets
from assets.tournament import tournament_assets, tournament_round_job
from coordinator_dagster.contracts import CrunchContract, load_contract
from coordinator_dagster.partitions import DEFAULT_START, checkpoint_partitions, starting_at
from coordinator_dagster.settings import Settings, load_settings
from resources import ClockResource, FeedSource, InProcessModelRunner, LakeResource, ModelRunnerResource, OrchestratorModelRunner, RemoteModelRunner, SyntheticFeed
from resources.density import DensityTrackers
from resources.feeds import CcxtFeed, PythFeed
from resources.tournament import TournamentModels
from sensors import default_jobs, default_sensors, ingest_job
from sensors.density import density_jobs, density_sensors
from sensors.checkpoint_approval import approve_checkpoint_job
from sensors.jobs import retention_job, what_if_job
from sensors.trading import trading_jobs, trading_sensors
from sensors.schedules import build_checkpoint_schedule, build_ingest_schedule, retention_schedule
from sensors.tournament import tournament_upload_sensor


def feed_resource(settings: Settings) -> FeedSource:
    """The feed FEED_SOURCE names; a kind or granularity it cannot serve is a start-up error."""
    common: dict[str, Any] = {
        "subjects": settings.feed_subjects,
        "kind": settings.feed_kind,
        "granularity": settings.feed_granularity,
        "max_gap_steps": settings.feed_max_gap_steps,
        "frozen_records": settings.feed_frozen_records,
        "freshness_seconds": settings.feed_freshness_seconds,
    }
    network = {
        "timeout_seconds": settings.feed_timeout_seconds,
        "max_retries": settings.feed_max_retries,
        "backoff_seconds": settings.feed_backoff_seconds,
    }
    if settings.feed_source == "ccxt":
        feed: FeedSource = CcxtFeed(
            **common,
            **network,
            exchange=settings.feed_exchange,
            quote=settings.feed_quote,
            symbols=settings.feed_symbols,
            base_url=settings.feed_base_url,
        )
    elif settings.feed_source == "pyth":
        feed = PythFeed(
            **common,
            **network,
            base_url=settings.pyth_hermes_url,
            benchmarks_url=settings.pyth_benchmarks_url,
            feed_ids=settings.pyth_feed_ids,
            api_key=dg.EnvVar("PYTH_API_KEY") if settings.pyth_api_key_set else "",
            concurrency=settings.pyth_concurrency,
        )
    else:
        feed = SyntheticFeed(**common, seed=settings.synthetic_seed)
    feed.check_config()
    return feed


def model_runner_resource(settings: Settings) -> ModelRunnerResource:
    """The runner service at MODEL_RUNNER_URL (models in worker processes that outlast runs), the
    several of MODEL_RUNNER_URLS (comma-separated; each serves a share of the models), or, without
    either, the models in each run's own process; with MODEL_RUNNER=orchestrator, the models CrunchDAO's
    model orchestrator hosts."""
    if settings.model_runner == "orchestrator":
        return OrchestratorModelRunner(
            host=settings.model_runner_node_host, port=settings.model_runner_node_port, crunch_id=settings.crunch_id,
            cert_dir=settings.secure_cert_dir, crunchers_file=settings.orchestrator_crunchers,
            failure_limit=settings.model_unhealthy_after, timeout_seconds=settings.model_timeout_seconds,
            base_classname=settings.model_base_classname, feed_shape=settings.feed_kind,
            streaks_path=str(settings.home / "orchestrator" / f"{settings.crunch_id}.streaks.json"),
        )
    url = settings.model_runner_url or settings.model_runner_urls.strip()
    if url:
        return RemoteModelRunner(url=url, timeout_seconds=settings.model_timeout_seconds)
    return InProcessModelRunner(
        manifest=settings.models_manifest, timeout_seconds=settings.model_timeout_seconds,
        base_classname=settings.model_base_classname, feed_shape=settings.feed_kind,
    )


def default_resources(settings: Settings, contract: CrunchContract) -> dict[str, Any]:
    resources = {
        "lake": LakeResource(home=str(settings.home)),
        "contract": contract,
        "feed": feed_resource(settings),
        "model_runner": model_runner_resource(settings),
        "clock": ClockResource(),
    }
    if contract.prediction_profiles:
        resources["density_trackers"] = DensityTrackers(manifest=settings.models_manifest)
    return resources


def build_defs(
    *,
    resource_overrides: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    contract: CrunchContract | None = None,
    executor: dg.ExecutorDefinition | None = None,
) -> dg.Definitions:
    # executor: where a run's steps execute; the default keeps them in the run's own process
    # (code_location_celery.py hands them to celery workers instead).
    settings = settings or load_settings()
    overrides = dict(resource_overrides or {})
    given = overrides.pop("contract", None)
    if contract is not None and given is not None and given != contract:
        raise ValueError("build_defs: pass the contract once, as contract= or as resource_overrides['contract'], not two different ones")
    contract = contract or given or load_contract()
    resources = {**default_resources(settings, contract), **overrides}
    # Partitions start where the node's data starts (PARTITIONS_START; see partitions.py).
    start = settings.partitions_start or DEFAULT_START
    period_partitions = checkpoint_partitions(settings.checkpoint_interval_seconds or contract.checkpoint_period, start)
    checkpoints = build_checkpoints_asset(period_partitions)
    checkpoint_job = next(job for job in default_jobs if job.name == "checkpoint_job")
    pipeline, jobs, sensors = [*starting_at(window_assets, start), leaderboard, group_leaderboard], default_jobs, default_sensors
    if contract.trading is not None:
        # Orders replayed into portfolios take the place of scores (assets.trading).
        pipeline, jobs, sensors = [*starting_at(trading_window_assets, start), leaderboard], trading_jobs, trading_sensors
    elif contract.prediction_profiles:
        # Density rounds by profile take the place of point rounds (assets.density): their round
        # scores feed the leaderboards by group and the checkpoints.
        pipeline = [*starting_at([feed_records, *density_window_assets], start), build_group_leaderboard_asset(density_round_scores)]
        jobs, sensors = [ingest_job, *density_jobs, checkpoint_job], density_sensors
        checkpoints = build_checkpoints_asset(period_partitions, deps=[density_round_scores])
    return dg.Definitions(
        # Audit bundles and what-if re-derive checkpoints from scores; a trading checkpoint
        # ranks by replayed PnL instead, so they are left out (the bundle would refuse it).
        assets=[
            *pipeline, checkpoints,
            *([build_audit_bundle_asset(period_partitions), what_if_report] if contract.trading is None else []),
            build_feed_retention_asset(settings.feed_record_ttl_days),
        ],
        jobs=[*jobs, retention_job, approve_checkpoint_job, *([what_if_job] if contract.trading is None else [])],
        sensors=sensors,
        schedules=[
            build_ingest_schedule(resources["feed"].granularity, live=settings.feed_live),
            build_checkpoint_schedule(checkpoint_job, period_partitions),
            retention_schedule,
        ],
        resources=resources,
        executor=executor or dg.in_process_executor,
    )


__all__ = ["build_defs", "build_tournament_defs"]


def build_tournament_defs(
    *,
    resource_overrides: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    contract: CrunchContract | None = None,
) -> dg.Definitions:
    """A tournament's code location: rounds on uploaded data, one dynamic partition per round
    (`assets.tournament`), driven from the UI or by the upload sensor; no feed."""
    settings = settings or load_settings()
    resources = {
        "lake": LakeResource(home=str(settings.home)),
        "contract": contract or load_contract(),
        "tournament_models": TournamentModels(
            manifest=settings.models_manifest, runner_url=settings.model_runner_url, timeout_seconds=settings.model_timeout_seconds
        ),
        "clock": ClockResource(),
        **dict(resource_overrides or {}),
    }
    return dg.Definitions(
        assets=tournament_assets, jobs=[tournament_round_job], sensors=[tournament_upload_sensor], resources=resources, executor=dg.in_process_executor
    )

"""`coordinator rounds serve`, and the round engine inside `coordinator feeds listen`: assembling
a `RoundEngine` from the node's settings (contract, lake, feed step, model runner) and binding its
reports to the Dagster instance as runless materializations."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from coordinator_dagster.engine.round_engine import ROUND_KEY, RoundEngine
from coordinator_dagster.settings import Settings

log = logging.getLogger("coordinator.rounds")


class DagsterReporter:
    """The engine's writes as runless materializations of their hour partitions on `instance`."""

    def __init__(self, instance: Any):
        self.instance = instance

    def report(self, table: str, partition: str, description: str, metadata: dict[str, Any]) -> None:
        import dagster as dg

        self.instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=table, partition=partition, description=description, metadata=metadata)
        )

    def reported(self, table: str, partition: str, round_stamp: str, look_back: int = 200) -> bool:
        """Whether the partition's newest materializations include this round's report."""
        import dagster as dg

        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(table), asset_partitions=[partition]), limit=look_back
        ).records
        for record in records:
            value = record.asset_materialization.metadata.get(ROUND_KEY) if record.asset_materialization else None
            if value is not None and getattr(value, "value", value) == round_stamp:
                return True
        return False


def build_engine(settings: Settings, instance: Any = None) -> RoundEngine:
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.definitions import feed_resource, model_runner_resource
    from coordinator_dagster.lake.store import Lake

    contract = load_contract()
    feed = feed_resource(settings).process_config_and_initialize()
    runner = model_runner_resource(settings).process_config_and_initialize()
    lake = Lake.for_contract(settings.home, contract)
    reporter = DagsterReporter(instance) if instance is not None else None
    engine = RoundEngine(
        lake, contract, feed.step_seconds, lambda: runner.open(contract.output_type, replay=False), reporter, manifest=settings.models_manifest or None
    )
    if settings.round_engine_scoring:
        from coordinator_dagster.engine.micro_scorer import MicroScorer
        from coordinator_dagster.partitions import DEFAULT_START

        first = settings.partitions_start or DEFAULT_START
        queued = engine.reports.wrap(reporter) if reporter is not None else None  # one writer of the instance at a time
        engine.scorer = MicroScorer(lake, contract, feed.step_seconds, queued, feed.check_settings(), first)
    return engine


def start_engine_thread(engine: RoundEngine) -> tuple[threading.Thread, threading.Event]:
    """The engine's loop on a thread of its own (inside the listener's process)."""
    stop = threading.Event()
    thread = threading.Thread(target=engine.serve, args=(stop,), name="round-engine", daemon=True)
    thread.start()
    return thread, stop


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    from coordinator_dagster import known_warnings
    from coordinator_dagster.cli.listener_setup import dagster_instance
    from coordinator_dagster.settings import load_settings

    known_warnings.accept()
    settings = load_settings()
    engine = build_engine(settings, dagster_instance(settings))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("round engine: predicting live rounds into %s", engine.lake.root)
    engine.serve(stop, poll_seconds=args.poll_seconds)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the `coordinator` parser."""
    rounds = commands.add_parser("rounds", help="live prediction rounds")
    sub = rounds.add_subparsers(dest="rounds_command", required=True)
    serve = sub.add_parser(
        "serve",
        help="predict each live round as soon as the record closing it lands (until SIGINT/SIGTERM)",
        description=(
            "The round engine on its own (`coordinator feeds listen` runs one already, unless --no-round-engine): "
            "builds each round's inputs, calls the model runner, writes inputs and predictions to the lake and reports "
            "them to Dagster (DAGSTER_HOME) as runless materializations of their hour partitions."
        ),
    )
    serve.add_argument("--poll-seconds", type=float, default=0.02, help="how often the feed's hour file is checked (default %(default)s)")
    serve.set_defaults(func=_serve)

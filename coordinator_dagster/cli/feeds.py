"""`coordinator feeds ...`: the live feed listener."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be zero or a positive number")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return value


def _listen(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("coordinator.feeds.listen").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("coordinator.rounds").setLevel(logging.INFO)
    from coordinator_dagster import known_warnings

    known_warnings.accept()
    from coordinator_dagster.settings import load_settings
    from coordinator_dagster.cli.listener_setup import build_listener, dagster_instance, listener_config
    from coordinator_dagster.feeds.sources import FeedError

    try:
        settings = load_settings()
        config = listener_config(
            capacity=args.capacity,
            backoff=args.backoff,
            backoff_max=args.backoff_max,
            initial_backfill_minutes=args.initial_backfill_minutes,
            max_gap_hours=args.max_gap_hours,
        )
        listener = build_listener(settings, config, idle_timeout=args.idle_timeout, instance=dagster_instance(settings))
        engine = None
        if args.round_engine:
            from coordinator_dagster.cli.rounds import build_engine, start_engine_thread

            # An instance of its own: the listener's reporter thread commits events meanwhile.
            engine = build_engine(settings, dagster_instance(settings))
    except (ValueError, FeedError) as error:
        print(f"coordinator feeds listen: {error}", file=sys.stderr)
        return 2
    if engine is not None:
        listener.writer.on_write = lambda _results: engine.notify()
        engine_thread, engine_stop = start_engine_thread(engine)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, listener.stop)
        await listener.run()

    try:
        asyncio.run(main())
    except FeedError as error:  # a configuration the source refuses (unknown market, bad key)
        print(f"coordinator feeds listen: {error}", file=sys.stderr)
        return 2
    finally:
        if engine is not None:
            engine_stop.set()
            engine_thread.join(30)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the `coordinator` parser."""
    feeds = commands.add_parser("feeds", help="live feed ingestion")
    sub = feeds.add_subparsers(dest="feeds_command", required=True)
    listen = sub.add_parser(
        "listen",
        help="stream the configured feed (FEED_SOURCE, FEED_SUBJECTS, ...) into feed_records until SIGINT/SIGTERM",
        description=(
            "Subscribe to the configured feed (ccxt.pro WebSocket candles, Pyth Hermes server-sent events, or the "
            "synthetic source in real time), write each closed record into the current feed_records hour partition "
            "and report every write to Dagster (DAGSTER_HOME) as a runless asset event. Gaps after a (re)connect "
            "are filled through the REST path. Set FEED_LIVE=1 for the code location so the minute poll starts stopped."
        ),
    )
    listen.add_argument("--capacity", type=_positive_int, default=10_000, help="closed records waiting for the writer, at most (default %(default)s)")
    listen.add_argument("--backoff", type=_positive_float, default=1.0, help="first reconnect delay in seconds, doubled per failed attempt, with jitter (default %(default)s)")
    listen.add_argument("--backoff-max", type=_positive_float, default=60.0, help="longest reconnect delay in seconds (default %(default)s)")
    listen.add_argument("--idle-timeout", type=_positive_float, default=30.0, help="seconds without a message before a connection counts as dead (default %(default)s)")
    listen.add_argument("--initial-backfill-minutes", type=_non_negative_float, default=60.0, help="with no record of the feed in the lake, fill this far back at start (default %(default)s)")
    listen.add_argument("--max-gap-hours", type=_positive_float, default=24.0, help="longest gap filled through REST after an outage (default %(default)s)")
    listen.add_argument(
        "--no-round-engine", dest="round_engine", action="store_false",
        help="do not predict live rounds in this process (the round engine; `coordinator rounds serve` runs it alone)",
    )
    listen.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    listen.set_defaults(func=_listen)

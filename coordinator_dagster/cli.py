"""The `coordinator` command line: demo, api, catalog."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from pathlib import Path

from coordinator_dagster.settings import load_settings

DEFAULT_DEMO_START = "2026-11-20"


def _date(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-20") from None


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return value


def _demo(args: argparse.Namespace) -> int:
    import dagster as dg

    from coordinator_dagster.demo import format_result, print_progress, run_demo

    home = Path(args.home) if args.home else load_settings().home
    # With DAGSTER_HOME set, the demo's runs are recorded where the UI can show them.
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    print(f"coordinator demo: {args.days} day(s) from {args.start:%Y-%m-%d}, seed {args.seed}, lake {home}")
    result = run_demo(home, args.start, args.days, seed=args.seed, instance=instance, report=print_progress)
    print(format_result(result))
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    settings = load_settings()
    uvicorn.run(create_app(), host=args.host or settings.api_host, port=args.port or settings.api_port, log_level="info")
    return 0


def _catalog(args: argparse.Namespace) -> int:
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.lake import Lake

    lake = Lake(load_settings().home, window_names=load_contract().aggregation.windows)
    if not lake.refresh_catalog():
        print(f"{lake.catalog_path} is held by another process; close it and retry", file=sys.stderr)
        return 1
    print(f"catalog refreshed: duckdb {lake.catalog_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coordinator", description="Crunch coordinator node on Dagster")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a complete simulated competition in one process")
    demo.add_argument("--start", type=_date, default=_date(DEFAULT_DEMO_START), help="first day (UTC), default %(default)s")
    demo.add_argument("--days", type=_positive, default=2, help="days of one-minute rounds (default 2)")
    demo.add_argument("--seed", type=int, default=7, help="synthetic feed seed (default 7)")
    demo.add_argument("--home", help="COORDINATOR_HOME to write the lake into (default: the node's)")
    demo.set_defaults(func=_demo)

    api = commands.add_parser("api", help="serve the report API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.set_defaults(func=_api)

    catalog = commands.add_parser("catalog", help="rewrite the DuckDB catalog file's views")
    catalog.set_defaults(func=_catalog)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""The `coordinator` command line: demo, api, catalog."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from coordinator_dagster.cli.feeds import register as register_feeds
from coordinator_dagster.cli.models import register as register_models
from coordinator_dagster.cli.rounds import register as register_rounds
from coordinator_dagster.cli.operations import register as register_operations
from coordinator_dagster.cli.checkpoints import register as register_checkpoints
from coordinator_dagster.cli.workspace import register as register_workspace
from coordinator_dagster.settings import dagster_instance, load_settings

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
    from coordinator_dagster import known_warnings

    known_warnings.accept()
    from coordinator_dagster.cli.demo import demo_home, format_result, print_progress, run_demo

    settings = load_settings()
    home = Path(args.home) if args.home else demo_home(settings.home)
    from coordinator_dagster.contracts import load_contract

    contract = load_contract()
    from coordinator_dagster.tournament_rounds import is_tournament

    if is_tournament(contract):  # rounds on uploaded data: simulated uploads through the round assets
        from coordinator_dagster.cli.tournament_demo import format_tournament_result, run_tournament_demo

        print(f"coordinator demo: {args.days} tournament round(s) from {args.start:%Y-%m-%d}, seed {args.seed}, into {home}")
        result = run_tournament_demo(home, args.start, args.days, contract, settings.models_manifest, seed=args.seed, instance=dagster_instance(settings))
        print(format_tournament_result(result))
        return 0
    if contract.prediction_profiles:  # a density competition (Synth): its own round loop
        from coordinator_dagster.cli.density_demo import format_density_result, run_density_demo

        print(f"coordinator demo: {args.days} day(s) of {[p.name for p in contract.prediction_profiles]} rounds from {args.start:%Y-%m-%d}, seed {args.seed}, into {home}")
        result = run_density_demo(home, args.start, args.days, contract, settings.models_manifest, seed=args.seed, report=print_progress)
        print(format_density_result(result))
        return 0
    # With DAGSTER_HOME set, the demo's runs are recorded where the UI can show them.
    instance = dagster_instance(settings)
    print(f"coordinator demo: {args.days} day(s) from {args.start:%Y-%m-%d}, seed {args.seed}, into its own home {home} (--home to choose)")
    result = run_demo(home, args.start, args.days, seed=args.seed, instance=instance, report=print_progress)
    print(format_result(result))
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    settings = load_settings()
    uvicorn.run(create_app(), host=args.host or settings.api_host, port=args.port or settings.api_port, log_level="info")
    return 0


def _check_settings(args: argparse.Namespace) -> int:
    """Every setting the node's processes read, validated at once: `make run` calls this before it
    starts anything, so a bad value stops it with the reason instead of killing a child later."""
    from coordinator_dagster import known_warnings

    known_warnings.accept()
    from api.settings import ApiSettings
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.definitions import feed_resource
    from coordinator_dagster.models.manifest import load_manifest
    from coordinator_dagster.feeds.granularity import granularity_seconds
    from coordinator_dagster.round_schedule import feed_mismatches

    try:
        settings = load_settings()
        ApiSettings.from_env()
        contract = load_contract()
        feed_resource(settings)  # a kind or granularity the source cannot serve
        problems = feed_mismatches(contract, settings.feed_subjects, granularity_seconds(settings.feed_granularity))
        if problems:
            raise ValueError("the feed cannot serve the contract's rounds: " + "; ".join(problems))
        models = load_manifest(settings.models_manifest)
        if args.remember_partitions_start and settings.partitions_start is None:
            settings = _remember_partitions_start(settings, contract)
    except ValueError as error:  # SettingsError, ContractError, ManifestError, feed config errors
        print(f"coordinator check-settings: {error}", file=sys.stderr)
        return 2
    if settings.partitions_start is not None:
        print(f"partitions start {settings.partitions_start:%Y-%m-%d %H:%M} UTC")
    print(
        f"settings ok: COORDINATOR_HOME={settings.home}, FEED_SOURCE={settings.feed_source} "
        f"({settings.feed_kind} {settings.feed_granularity}, {','.join(settings.feed_subjects)}), "
        f"{len(models)} model(s), contract with {len(contract.scheduled_predictions)} scheduled prediction(s)"
    )
    return 0


def _remember_partitions_start(settings, contract):
    """A home's partitions start, decided once and kept in HOME/partitions_start so that it stays
    the same across restarts: the hour of the first feed record already in the lake, else the hour
    before now (the listener's first backfill reaches back an hour)."""
    import datetime as dt

    from coordinator_dagster.lake.store import Lake

    first = Lake.for_contract(settings.home, contract).query("SELECT min(ts_event) FROM feed_records").item()
    now = dt.datetime.now(dt.timezone.utc)
    earliest = min(first.astimezone(dt.timezone.utc), now) if first is not None else now - dt.timedelta(hours=1)
    start = earliest.replace(minute=0, second=0, microsecond=0)
    path = settings.partitions_start_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(start.isoformat() + "\n", encoding="utf-8")
    return settings.model_copy(update={"partitions_start": start})


def _catalog(args: argparse.Namespace) -> int:
    _, lake = _lake()
    if not lake.refresh_catalog():
        print(f"{lake.catalog_path} is held by another process; close it and retry", file=sys.stderr)
        return 1
    print(f"catalog refreshed: duckdb {lake.catalog_path}")
    return 0


VERIFY_PROOF_CHECKS = """\
Check, offline, that one snapshot is in a checkpoint's Merkle tree (scheme coordinator-merkle-v2,
described in coordinator_dagster/scoring/merkle.py). In order, the first failure is reported:

  1. shape: the proof has exactly the scheme's keys, scheme "coordinator-merkle-v2", every hash
     64 lowercase hex characters, every path step {"sibling": hash, "side": "left"|"right"};
  2. snapshot: exactly model_id, period_start, period_end, prediction_count, result_summary,
     each written exactly in canonical form: timestamps YYYY-MM-DDTHH:MM:SS+00:00 (no other
     spelling of the same instant), prediction_count an integer, result_summary a JSON object
     without NaN or infinities;
  3. leaf: sha256 of the snapshot's JSON (keys sorted, no spaces) equals "leaf";
  4. leaf_path: folding the path from the leaf gives "cycle_root";
  5. chain: "chained_root" is cycle_root when previous_chained_root is "" (first cycle of the
     period), else sha256(previous_chained_root + cycle_root);
  6. checkpoint_path: folding the path from chained_root gives "checkpoint_root";
  7. with --root: checkpoint_root equals that published root; without it, "valid" only means the
     proof is consistent with its own checkpoint_root;
  8. an API answer (the proof under "proof"): its "merkle_root" equals the proof's checkpoint_root.

Prints "valid: snapshot of "<model_id>" for <period_start> is in checkpoint root <hex> ..." or
"INVALID: <step>: <reason>". Every value printed is one the checks above cover, as it was hashed;
checkpoint_id and any other key of an API answer are not checked and not printed.
"""


def _verify_proof(args: argparse.Namespace) -> int:
    import json

    from coordinator_dagster.scoring.merkle import verify_proof

    source = "stdin" if args.path == "-" else args.path
    try:
        text = sys.stdin.read() if args.path == "-" else Path(args.path).read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"coordinator verify-proof: cannot read {source}: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RecursionError) as exc:
        print(f"coordinator verify-proof: {source} is not JSON: {exc}", file=sys.stderr)
        return 2
    # An API answer wraps the proof under "proof"; a bare proof has no such key.
    answered_root = None
    if isinstance(document, dict) and isinstance(document.get("proof"), dict):
        answered_root = document.get("merkle_root")
        document = document["proof"]
    ok, reason = verify_proof(document, expected_root=args.root)
    if ok and answered_root is not None and answered_root != document["checkpoint_root"]:
        # The answer names a root its own proof does not lead to: nothing in it can be trusted.
        ok, reason = False, f"answer: its merkle_root {json.dumps(answered_root)} is not the proof's checkpoint_root {document['checkpoint_root']}"
    print(f"valid: {reason}" if ok else f"INVALID: {reason}")
    return 0 if ok else 1


def _lake():
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.lake.store import Lake

    contract = load_contract()
    return contract, Lake.for_contract(load_settings().home, contract)


def _versions(args: argparse.Namespace) -> int:
    _, lake = _lake()
    for table in ("scores", "snapshots"):
        for version in lake.versions(table):
            files = lake.with_version(version).files(table)
            marker = " (current)" if version == lake.scoring_version else ""
            print(f"{table:<10} {version}{marker}: {len(files)} hour partitions")
    return 0


def _compare_versions(args: argparse.Namespace) -> int:
    import polars as pl

    from coordinator_dagster.scoring.ranking import compare_versions

    contract, lake = _lake()
    start, end = args.start, args.end + dt.timedelta(days=1)
    frames = []
    for version in (args.a, args.b):
        if version not in lake.versions("snapshots"):
            print(f"no snapshots of scoring version {version!r}; versions: {lake.versions('snapshots')}", file=sys.stderr)
            return 2
        frames.append(lake.with_version(version).read_window("snapshots", start, end, column="period_start"))
    table = compare_versions(contract, frames[0], frames[1], lake.read("models"), labels=(args.a, args.b))
    print(f"leaderboards of scoring versions {args.a} and {args.b}, snapshots {start:%Y-%m-%d} → {end:%Y-%m-%d}")
    with pl.Config(tbl_rows=200, tbl_hide_dataframe_shape=True, tbl_width_chars=160):
        print(table)
    return 0


def _prune_version(args: argparse.Namespace) -> int:
    _, lake = _lake()
    try:
        removed = lake.prune_version(args.version)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not removed:
        print(f"no data of scoring version {args.version!r}", file=sys.stderr)
        return 1
    for folder in removed:
        print(f"removed {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coordinator", description="Crunch coordinator node on Dagster")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a complete simulated competition in one process")
    demo.add_argument("--start", type=_date, default=_date(DEFAULT_DEMO_START), help="first day (UTC), default %(default)s")
    demo.add_argument("--days", type=_positive, default=2, help="days of one-minute rounds (default 2)")
    demo.add_argument("--seed", type=int, default=7, help="synthetic feed seed (default 7)")
    demo.add_argument("--home", help="home to write the demo's lake into (default: demo/ inside COORDINATOR_HOME, apart from the node's lake)")
    demo.set_defaults(func=_demo)

    api = commands.add_parser("api", help="serve the report API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.set_defaults(func=_api)

    check = commands.add_parser("check-settings", help="validate every setting from the environment (exit 2 with the reason)")
    check.add_argument(
        "--remember-partitions-start", action="store_true",
        help="without PARTITIONS_START, decide this home's partitions start once and keep it in HOME/partitions_start (make run)",
    )
    check.set_defaults(func=_check_settings)

    catalog = commands.add_parser("catalog", help="rewrite the DuckDB catalog file's views")
    catalog.set_defaults(func=_catalog)

    versions = commands.add_parser("versions", help="list the scoring versions in the lake")
    versions.set_defaults(func=_versions)

    compare = commands.add_parser("compare-versions", help="two scoring versions' leaderboards over the same days")
    compare.add_argument("a", help="scoring version, e.g. v1")
    compare.add_argument("b", help="scoring version, e.g. v2")
    compare.add_argument("--start", type=_date, required=True, help="first day (UTC)")
    compare.add_argument("--end", type=_date, required=True, help="last day (UTC), included")
    compare.set_defaults(func=_compare_versions)

    prune = commands.add_parser("prune-version", help="delete an old scoring version's scores and snapshots")
    prune.add_argument("version")
    prune.set_defaults(func=_prune_version)

    verify = commands.add_parser(
        "verify-proof",
        help="check a snapshot's Merkle proof offline (exit 0 valid, 1 invalid, 2 unreadable)",
        description=VERIFY_PROOF_CHECKS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("path", metavar="PATH", help="proof JSON file, or - for stdin (a bare proof or an API answer with a \"proof\" key)")
    verify.add_argument("--root", metavar="HEX", help="the published checkpoint root the proof must lead to")
    verify.set_defaults(func=_verify_proof)

    # Command groups with modules of their own.
    register_models(commands)
    register_feeds(commands)
    register_rounds(commands)
    register_workspace(commands)
    register_operations(commands)
    register_checkpoints(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""`coordinator backup|restore`: node backup and restore (the logic is in `backup.py`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _settings(args: argparse.Namespace):
    """The node's settings with --home and --dagster-home in place of COORDINATOR_HOME and DAGSTER_HOME."""
    from coordinator_dagster.settings import load_settings

    update = {}
    if args.home:
        update["home"] = Path(args.home).expanduser()
    if args.dagster_home:
        update["dagster_home"] = Path(args.dagster_home).expanduser()
    return load_settings().model_copy(update=update)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _backup(args: argparse.Namespace) -> int:
    from coordinator_dagster.lake.backup import BackupError, backup

    settings = _settings(args)
    home, dagster_home = settings.home, settings.resolved_dagster_home()
    try:
        result = backup(Path(args.archive), home, dagster_home)
    except BackupError as exc:
        print(f"coordinator backup: {exc}", file=sys.stderr)
        return 1
    print(
        f"backed up {home}" + (f" and {dagster_home}" if dagster_home.is_dir() else " (no Dagster instance found)")
        + f" to {result.archive}: {result.files} files ({result.sqlite_databases} SQLite databases), "
        f"{_mb(result.bytes)} → {_mb(result.archive.stat().st_size)} in {result.seconds:.1f} s"
    )
    if settings.dagster_pg_url_set:
        print(_PG_NOTE.format(what="backed up", tool="pg_dump --format=custom"))
    if settings.lake_url:
        print(_LAKE_NOTE.format(url=settings.lake_url, what="the archive holds only this host's copy of it, which may lag other hosts' writes"))
    return 0


# The archive holds DAGSTER_HOME's files only; an instance on PostgreSQL is the database's to keep.
_PG_NOTE = (
    "note: DAGSTER_PG_URL is set: the Dagster instance's runs, events and cursors live in PostgreSQL and are not "
    "{what} here; use {tool} for that database (docs/deployment.md)"
)

# With LAKE_URL the bucket is the lake; HOME/lake is a copy that the next read brings back in line.
_LAKE_NOTE = (
    "note: LAKE_URL is set: the lake lives in {url}; {what}. Keep the bucket with the store's own tools "
    "(bucket versioning or replication, or `aws s3 sync {url} <backup>`: copy both its current/ and objects/ "
    "prefixes) (docs/deployment.md)"
)


def _restore(args: argparse.Namespace) -> int:
    from coordinator_dagster.lake.backup import BackupError, restore

    settings = _settings(args)
    home, dagster_home = settings.home, settings.dagster_home
    try:
        result = restore(Path(args.archive), home, dagster_home, force=args.force)
    except BackupError as exc:
        print(f"coordinator restore: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored {result.files} files ({_mb(result.bytes)}) into {result.home}"
        + (f" and {result.dagster_home}" if result.dagster_home else "")
        + f" in {result.seconds:.1f} s"
    )
    if settings.dagster_pg_url_set:
        print(_PG_NOTE.format(what="restored", tool="pg_restore"))
    if settings.lake_url:
        print(_LAKE_NOTE.format(url=settings.lake_url, what="a restore writes only this host's copy, and the bucket's pointers win over it at the next read"))
    _rebuild_catalog(result.home)
    return 0


def _rebuild_catalog(home: Path) -> None:
    # The DuckDB catalog holds views with absolute paths, so it is rebuilt rather than restored.
    from coordinator_dagster.contracts import ContractError, load_contract
    from coordinator_dagster.lake.store import Lake

    try:
        rebuilt = Lake.for_contract(home, load_contract()).refresh_catalog()
    except (ContractError, ValueError) as exc:
        print(f"note: the DuckDB catalog was not rebuilt ({exc}); run `coordinator catalog` with the node's settings")
        return
    if rebuilt:
        print(f"catalog rebuilt: {home / 'coordinator.duckdb'}")


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the `coordinator` parser."""
    backup = commands.add_parser(
        "backup",
        help="archive the lake and the Dagster instance (safe while the node runs)",
        description="Write ARCHIVE (a .tar.gz) with the lake (COORDINATOR_HOME) and the Dagster instance "
        "(DAGSTER_HOME, SQLite databases copied with SQLite's online backup) and a manifest of checksums. "
        "The archive is replaced atomically.",
    )
    backup.add_argument("archive", help="the archive to write, e.g. backups/node-2026-11-25.tar.gz")
    backup.add_argument("--home", help="COORDINATOR_HOME to back up (default: the node's)")
    backup.add_argument("--dagster-home", help="DAGSTER_HOME to back up (default: $DAGSTER_HOME, else HOME/dagster_home)")
    backup.set_defaults(func=_backup)

    restore = commands.add_parser(
        "restore",
        help="restore a backup into empty homes (the node must be stopped)",
        description="Verify ARCHIVE in full, then restore it into COORDINATOR_HOME and DAGSTER_HOME. Targets must be "
        "empty or missing unless --force; a damaged archive changes nothing.",
    )
    restore.add_argument("archive", help="an archive written by `coordinator backup`")
    restore.add_argument("--home", help="COORDINATOR_HOME to restore into (default: the node's)")
    restore.add_argument(
        "--dagster-home",
        help="DAGSTER_HOME to restore into (default: $DAGSTER_HOME, else where the archive had it, HOME/dagster_home)",
    )
    restore.add_argument("--force", action="store_true", help="replace non-empty targets (their current content is deleted)")
    restore.set_defaults(func=_restore)

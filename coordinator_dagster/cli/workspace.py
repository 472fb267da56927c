"""`coordinator init-workspace`: new competition workspaces from template packs (`scaffold.py`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _init_workspace(args: argparse.Namespace) -> int:
    from coordinator_dagster.cli.scaffold import WorkspaceError, available_packs, coordinator_root, create_workspace

    if args.list_templates:
        for pack in available_packs():
            print(f"{pack.name:<12} {pack.description}")
        return 0
    if args.name is None:
        print("coordinator init-workspace: a workspace name is required", file=sys.stderr)
        return 2
    try:
        target = create_workspace(args.name, args.template, Path(args.dir) if args.dir else None)
    except WorkspaceError as exc:
        print(f"coordinator init-workspace: {exc}", file=sys.stderr)
        return 1
    print(f"created {target} from the {args.template!r} template")
    if coordinator_root() is None:
        print(
            "note: this coordinator is not a checkout (no scripts/run.sh): `make test` and `make demo` work; "
            "`make run` needs COORDINATOR_ROOT=<a coordinator checkout>",
        )
    print(f"\n  cd {target}\n  make test    # the contract's tests\n  make run     # the node\n")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the `coordinator` parser."""
    init = commands.add_parser(
        "init-workspace",
        help="create a new competition workspace from a template pack",
        description="Create NAME/ holding a competition's contract, models, manifest, .env, workspace.yaml, "
        "README, tests and a Makefile (make run / make test) bound to this coordinator installation.",
    )
    init.add_argument("name", nargs="?", help="lowercase letters, digits, '-' and '_', starting with a letter")
    init.add_argument("--template", default="realtime", help="template pack (default %(default)s; see --list-templates)")
    init.add_argument("--dir", metavar="PARENT", help="folder to create the workspace in (default: the current one)")
    init.add_argument("--list-templates", action="store_true", help="list the template packs and exit")
    init.set_defaults(func=_init_workspace)

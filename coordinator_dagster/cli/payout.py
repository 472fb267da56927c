"""`coordinator payout CKP --pool AMOUNT --out FILE`: a checkpoint's prize file for the chain tool.

Writes the JSON Lines prize file (`coordinator_dagster.scoring.payouts.prize_file`) of a checkpoint
the gate lets out (`coordinator_dagster.checkpoint_review.export_refusal`: approved with its current
emission hash when CHECKPOINT_APPROVAL=required, and never a checkpoint already exported and since
confirmed), replaces FILE atomically, and appends the export to the `checkpoint_exports` ledger,
all under the checkpoint's lock.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import json
import os
import sys
from pathlib import Path


def _payout(args: argparse.Namespace) -> int:
    from coordinator_dagster import checkpoint_review as review
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.lake.store import Lake
    from coordinator_dagster.scoring import payouts
    from coordinator_dagster.settings import load_settings
    from coordinator_dagster.statuses import CheckpointStatus

    settings = load_settings()
    home = Path(args.home).expanduser() if args.home else settings.home
    lake = Lake.for_contract(home, load_contract())
    cid = args.checkpoint
    if args.pool < 0:
        print("coordinator payout: --pool must not be negative", file=sys.stderr)
        return 2
    found = lake.query("SELECT status, period_end, entries, emission FROM checkpoints WHERE checkpoint_id = ?", [cid])
    if not found.height:
        print(f"coordinator payout: no checkpoint {cid!r} in {home}", file=sys.stderr)
        return 1
    with lake.partition_lock("checkpoint_events", cid):
        status, period_end, entries, emission = lake.query(
            "SELECT status, period_end, entries, emission FROM checkpoints WHERE checkpoint_id = ?", [cid]
        ).row(0)
        digest = review.emission_hash(emission)
        latest = review.latest_approval(review.approval_events(lake, cid))
        refusal = review.export_refusal(
            cid, settings.checkpoint_approval, CheckpointStatus(status), digest, latest, review.export_events(lake, cid)
        )
        if refusal:
            print(f"coordinator payout: {refusal}", file=sys.stderr)
            return 1
        lines = payouts.prize_file(json.loads(emission), json.loads(entries or "[]"), args.pool, period_end)
        text = payouts.prize_file_text(lines)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = out.with_name(f".{out.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, out)
        caller = f"cli:{getpass.getuser()}"
        file_sha = hashlib.sha256(text.encode()).hexdigest()
        lake.append_event("checkpoint_exports", review.export_row(cid, digest, args.pool, len(lines), file_sha, caller, dt.datetime.now(dt.timezone.utc)))
    paid = sum(line["prize"] for line in lines)
    print(
        f"wrote {out}: {len(lines)} models, prizes {paid:,} of pool {args.pool:,}"
        + (f" ({args.pool - paid:,} retained by the emission rule)" if paid != args.pool else "")
        + f"; {cid} emission {digest}, file sha256 {file_sha}"
    )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `payout` to the `coordinator` parser."""
    payout = commands.add_parser(
        "payout",
        help="write a checkpoint's prize file (JSON Lines) for the on-chain checkpoint tool",
        description="Write FILE with one line per rewarded model, {\"timestamp\": <period end, ms>, \"model\": <model id>, "
        "\"prize\": <integer>}, the prizes splitting AMOUNT (the pool in its smallest unit) by the checkpoint's shares with "
        "the largest remainder method, so they add up to exactly AMOUNT. Refused for a checkpoint not approved with its "
        "current emission hash (CHECKPOINT_APPROVAL=required) and for one already exported and since confirmed; every "
        "export is recorded in the checkpoint_exports ledger.",
    )
    payout.add_argument("checkpoint", help="the checkpoint id, e.g. CKP-2026-11-15")
    payout.add_argument("--pool", type=int, required=True, help="the pool in its smallest unit (e.g. USDC micro-units)")
    payout.add_argument("--out", required=True, help="the prize file to write (replaced atomically)")
    payout.add_argument("--home", help="COORDINATOR_HOME to read (default: the node's)")
    payout.set_defaults(func=_payout)

"""Checkpoint commands: `coordinator payout` (the prize file) and `coordinator explain` (why a
model got its share).

`coordinator payout CKP --pool AMOUNT --out FILE` writes the JSON Lines prize file (`coordinator_dagster.scoring.payouts.prize_file`) of a checkpoint
the gate lets out (`coordinator_dagster.checkpoint_review.export_refusal`: approved with its current
emission hash when CHECKPOINT_APPROVAL=required, and never a checkpoint already exported and since
confirmed), replaces FILE atomically, and appends the export to the `checkpoint_exports` ledger,
all under the checkpoint's lock. `coordinator explain CKP MODEL` prints, as JSON, what
`GET /reports/checkpoints/{id}/explain` answers (`coordinator_dagster.checkpoint_explain`);
`coordinator what-if` compares the last checkpoints under a candidate rule or scoring function
(`coordinator_dagster.checkpoint_what_if`). `coordinator audit verify BUNDLE` re-derives an audit
bundle's numbers from the bundle alone (`coordinator_dagster.audit.verify`); `coordinator audit
bundle CKP` writes one, as the `audit_bundle` asset does.
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


def _explain(args: argparse.Namespace) -> int:
    from coordinator_dagster.checkpoint_explain import explain
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.lake.store import Lake
    from coordinator_dagster.settings import load_settings

    home = Path(args.home).expanduser() if args.home else load_settings().home
    contract = load_contract()
    try:
        answer = explain(Lake.for_contract(home, contract), contract, args.checkpoint, args.model)
    except KeyError as exc:
        print(f"coordinator explain: {exc.args[0]}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, default=str))
    return 0


def _what_if(args: argparse.Namespace) -> int:
    from coordinator_dagster import checkpoint_review as review
    from coordinator_dagster.checkpoint_what_if import candidate_contract, stability, what_if
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.lake.store import Lake
    from coordinator_dagster.settings import load_settings

    home = Path(args.home).expanduser() if args.home else load_settings().home
    contract = load_contract()
    try:
        candidate = candidate_contract(contract, args.build_emission, args.scoring_function)
    except ValueError as exc:
        print(f"coordinator what-if: {exc}", file=sys.stderr)
        return 2
    try:
        results = what_if(Lake.for_contract(home, contract), candidate, args.checkpoints, rescore=bool(args.scoring_function))
    except ValueError as exc:
        print(f"coordinator what-if: {exc}", file=sys.stderr)
        return 2
    for result in results:
        state = "reproduced exactly" if result["reproduced"] else f"{result['stored_hash']} → {result['candidate_hash']}"
        print(f"## {result['checkpoint_id']}: {state}\n")
        print(review.diff_markdown("the stored emission (was = stored, now = candidate)", result["diff"]) + "\n")
    print(json.dumps(stability(results)))
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from coordinator_dagster.audit.verify import verify_bundle

    verdict = verify_bundle(args.bundle)
    for line in verdict.checked:
        print(f"ok: {line}")
    if not verdict.ok:
        print(f"FAILED: {verdict.message}")
        return 1
    print(verdict.message)
    return 0


def _audit_bundle(args: argparse.Namespace) -> int:
    from coordinator_dagster.audit import bundle
    from coordinator_dagster.contracts import load_contract
    from coordinator_dagster.lake.store import Lake
    from coordinator_dagster.settings import load_settings

    home = Path(args.home).expanduser() if args.home else load_settings().home
    contract = load_contract()
    try:
        path, new = bundle.build_bundle(Lake.for_contract(home, contract), contract, args.checkpoint, dt.datetime.now(dt.timezone.utc))
    except (KeyError, bundle.NotBundled) as exc:
        print(f"coordinator audit bundle: {exc.args[0]}", file=sys.stderr)
        return 1
    print(f"{'wrote' if new else 'already written'}: {path}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `payout`, `explain`, `what-if` and `audit` to the `coordinator` parser."""
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

    explain = commands.add_parser(
        "explain",
        help="why a model got its share of a checkpoint: rank, rule, ranking value, snapshots and their Merkle proofs",
        description="Print (JSON) the model's rank and share in the checkpoint and the rule that gave them, its ranking "
        "value re-derived from its snapshots of the period, and each snapshot's Merkle proof (check one with "
        "`coordinator verify-proof`).",
    )
    explain.add_argument("checkpoint", help="the checkpoint id, e.g. CKP-2026-11-15")
    explain.add_argument("model", help="the model id")
    explain.add_argument("--home", help="COORDINATOR_HOME to read (default: the node's)")
    explain.set_defaults(func=_explain)

    what = commands.add_parser(
        "what-if",
        help="recompute the last checkpoints under a candidate emission rule and/or scoring function and compare, writing nothing",
        description="Apply --build-emission (module:function; default: the contract's own rule) to the ranked entries of "
        "the last N checkpoints (with --scoring-function, to entries re-derived from the periods re-scored by it) and "
        "print, per cruncher, the stored vs the candidate share and rank, then a stability summary (JSON). The lake is "
        "only read. The Dagster job what_if_job does the same from the Launchpad.",
    )
    what.add_argument("--build-emission", help="the candidate rule, module:function (default: the contract's)")
    what.add_argument(
        "--scoring-function",
        help="a candidate scoring function, module:function: each period is re-scored with it in memory (default: stored scores)",
    )
    what.add_argument("--checkpoints", type=int, default=4, help="how many of the newest checkpoints (default 4)")
    what.add_argument("--home", help="COORDINATOR_HOME to read (default: the node's)")
    what.set_defaults(func=_what_if)

    audit = commands.add_parser("audit", help="audit bundles: write one for a checkpoint, or verify one offline")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="re-derive a bundle's scores, snapshots, ranking, emission and Merkle root from the bundle alone",
        description="Check every member against the manifest's sha256, rebuild the contract (its callables' code must be "
        "the bundle's), re-derive scores, snapshots, ranking, emission and Merkle root and compare them with the bundled "
        "ones. Exit 0 when all agree; 1 with the first difference.",
    )
    verify.add_argument("bundle", help="the bundle's .zip file")
    verify.set_defaults(func=_audit_verify)
    write = audit_commands.add_parser("bundle", help="write a checkpoint's audit bundle under COORDINATOR_HOME/audit_bundles/")
    write.add_argument("checkpoint", help="the checkpoint id, e.g. CKP-2026-11-15")
    write.add_argument("--home", help="COORDINATOR_HOME to read (default: the node's)")
    write.set_defaults(func=_audit_bundle)

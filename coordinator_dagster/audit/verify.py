"""Verifying an audit bundle from the bundle alone: every member against the manifest, the
contract rebuilt with its callables' code checked, then scores, snapshots, ranking, emission and
Merkle root recomputed and compared with the bundled ones. For a checkpoint of the production rule
(`TopKPerGroup`): the group leaderboards from the bundled round scores, the entries, the emission,
the payout table and the Merkle root.

Frames are compared value for value (same columns and dtypes, floats exactly); the emission is
compared byte for byte with `emission.json` (the canonical JSON whose sha256 is the emission
hash), the entries as canonical JSON, the Merkle root as text. The first difference ends the
verification and is the answer, in the order the numbers are derived, so the message names the
first step that does not reproduce.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field

import polars as pl

from coordinator_dagster.audit import derive, record
from coordinator_dagster.audit.bundle import FORMAT, FRAMES, MANIFEST
from coordinator_dagster.checkpoint_review import canonical_emission


class Difference(Exception):
    """The first thing in a bundle that does not verify."""


@dataclass
class Verdict:
    ok: bool
    message: str
    checked: list[str] = field(default_factory=list)


def _members(path: str | os.PathLike[str]) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            return {name: zf.read(name) for name in zf.namelist()}
    # A damaged archive fails in whichever layer meets the damage first: the zip directory
    # (BadZipFile), the deflate stream (zlib.error, EOFError) or a member's CRC (BadZipFile).
    except (OSError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error) as exc:
        raise Difference(f"{path}: not a readable bundle: {exc}") from None


def _checked_members(members: dict[str, bytes]) -> dict[str, bytes]:
    if MANIFEST not in members:
        raise Difference(f"no {MANIFEST} in the bundle")
    try:
        listed = json.loads(members[MANIFEST])
    except ValueError as exc:
        raise Difference(f"{MANIFEST} is not JSON: {exc}") from None
    if listed.get("format") != FORMAT:
        raise Difference(f"{MANIFEST}: format {listed.get('format')!r}, expected {FORMAT!r}")
    sums: dict[str, str] = listed.get("sha256", {})
    present = set(members) - {MANIFEST}
    if present != set(sums):
        raise Difference(f"members differ from the manifest: missing {sorted(set(sums) - present)}, not listed {sorted(present - set(sums))}")
    for name in sorted(sums):
        actual = hashlib.sha256(members[name]).hexdigest()
        if actual != sums[name]:
            raise Difference(f"{name}: sha256 {actual} is not the manifest's {sums[name]} (the member was altered)")
    return members


def _frame(members: dict[str, bytes], name: str) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(members[f"{name}.parquet"]))


def _json(members: dict[str, bytes], name: str) -> dict:
    return json.loads(members[name])


def _compare(name: str, stored: pl.DataFrame, derived: pl.DataFrame, key: tuple[str, ...]) -> None:
    problem = derive.first_difference(name, stored, derived, key)
    if problem is not None:
        raise Difference(problem)


def _verify(members: dict[str, bytes], checked: list[str]) -> str:
    _checked_members(members)
    checked.append(f"{len(members) - 1} members match the manifest's sha256")
    try:
        contract = record.rebuild_contract(_json(members, "contract.json"))
    except record.RecordError as exc:
        raise Difference(f"contract.json: {exc}") from None
    checked.append("contract rebuilt; its callables' code is the bundle's")
    point = _json(members, "checkpoint.json")
    if not derive.ranks_snapshots(contract):
        return _verify_groups(members, contract, point, checked)
    frames = {name: _frame(members, name) for name in FRAMES}
    now = dt.datetime.fromisoformat(point["scored_as_of"])
    start, end = dt.datetime.fromisoformat(point["period_start"]), dt.datetime.fromisoformat(point["period_end"])

    scores = derive.derive_scores(contract, frames["predictions"], frames["ensemble_predictions"], frames["inputs"], frames["feed_records"], now)
    _compare("scores", frames["scores"], scores, derive.SCORE_KEY)
    checked.append(f"scores: {scores.height} rows re-derived identically")
    snapshots = derive.derive_snapshots(contract, frames["predictions"], scores, frames["ensemble_predictions"], start, end)
    _compare("snapshots", frames["snapshots"], snapshots, derive.SNAPSHOT_KEY)
    checked.append(f"snapshots: {snapshots.height} rows re-derived identically")
    entries = derive.derive_entries(contract, snapshots, frames["models"])
    _check_entries(point, entries, "ranking")
    checked.append(f"ranking: {len(entries)} entries re-derived identically")
    _check_emission(members, contract, point, entries, checked)
    _check_merkle_root(point, snapshots, checked)
    return f"{point['checkpoint_id']}: verified"


def _check_entries(point: dict, entries: list[dict], what: str) -> None:
    if json.dumps(entries, sort_keys=True) != json.dumps(point["entries"], sort_keys=True):
        stored = [(e.get("model_id"), e.get("rank"), e.get("ranking_value")) for e in point["entries"]]
        again = [(e.get("model_id"), e.get("rank"), e.get("ranking_value")) for e in entries]
        first = next((i for i, (a, b) in enumerate(zip(stored, again)) if a != b), min(len(stored), len(again)))
        if first < min(len(stored), len(again)) or len(stored) != len(again):
            raise Difference(f"{what}: entry {first} differs: stored {stored[first:first + 1]}, re-derived {again[first:first + 1]}")
        first = next(i for i, (a, b) in enumerate(zip(point["entries"], entries)) if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True))
        where, stored_value, derived_value = _first_path(point["entries"][first], json.loads(json.dumps(entries[first])))
        raise Difference(f"{what}: entry {first} ({entries[first].get('model_id')}) {where}: stored {stored_value!r}, re-derived {derived_value!r}")


def _first_path(a, b, path: str = "") -> tuple[str, object, object]:
    """The first place (in key order) where two JSON values differ, and the two values there."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if json.dumps(a.get(key), sort_keys=True) != json.dumps(b.get(key), sort_keys=True):
                return _first_path(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
    return path or "value", a, b


def _check_emission(members: dict[str, bytes], contract, point: dict, entries: list[dict], checked: list[str]) -> None:
    emission = canonical_emission(derive.derive_emission(contract, entries)).encode()
    if emission != members["emission.json"]:
        at = next((i for i, (a, b) in enumerate(zip(emission, members["emission.json"])) if a != b), min(len(emission), len(members["emission.json"])))
        raise Difference(
            f"emission: byte {at} differs: stored …{members['emission.json'][max(0, at - 30):at + 30].decode(errors='replace')}…, "
            f"re-derived …{emission[max(0, at - 30):at + 30].decode(errors='replace')}…"
        )
    if hashlib.sha256(emission).hexdigest() != point["emission_hash"]:
        raise Difference(f"checkpoint.json: emission_hash {point['emission_hash']} is not the emission's {hashlib.sha256(emission).hexdigest()}")
    checked.append(f"emission re-derived byte for byte (sha256 {point['emission_hash']})")


def _check_merkle_root(point: dict, snapshots: pl.DataFrame, checked: list[str]) -> None:
    root = derive.derive_merkle_root(snapshots)
    if root != point["merkle_root"]:
        raise Difference(f"merkle root: stored {point['merkle_root']}, re-derived {root}")
    checked.append(f"Merkle root re-derived: {root}")


def _verify_groups(members: dict[str, bytes], contract, point: dict, checked: list[str]) -> str:
    """A `TopKPerGroup` checkpoint: group leaderboards from the bundled round scores, then the
    entries, the emission, the payout table (slots, retained shares, prizes) and the Merkle root."""
    end = dt.datetime.fromisoformat(point["period_end"])
    rounds = _frame(members, "rounds")
    entries = derive.derive_group_entries(contract, rounds, _frame(members, "models"), end)
    _check_entries(point, entries, "group ranking")
    checked.append(f"group ranking: {len(entries)} entries re-derived identically from {rounds.height} round scores")
    _check_emission(members, contract, point, entries, checked)
    table = derive.derive_payouts(contract, point["checkpoint_id"], entries, point["pool_amount"])
    _compare("payouts", _frame(members, "payouts"), table, derive.PAYOUT_KEY)
    checked.append(f"payouts: {table.height} rows re-derived identically (pool {point['pool_amount']})")
    _check_merkle_root(point, _frame(members, "snapshots"), checked)
    return f"{point['checkpoint_id']}: verified"


def verify_bundle(path: str | os.PathLike[str]) -> Verdict:
    """Verify the bundle at `path`; the verdict says what was checked, or the first difference."""
    checked: list[str] = []
    try:
        message = _verify(_members(path), checked)
    except Difference as exc:
        return Verdict(False, str(exc), checked)
    return Verdict(True, message, checked)

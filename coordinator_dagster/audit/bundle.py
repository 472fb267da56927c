"""Writing a checkpoint's audit bundle: one zip holding the period's data and the checkpoint.

Members: `feed_records`, `inputs`, `predictions`, `ensemble_predictions`, `scores`, `snapshots`
and `models` as Parquet; `contract.json` (settings, scoring version, callables by name with
their code hashes: `audit.record`); `checkpoint.json` (id, period, ranking key, ranked entries,
Merkle root, emission hash, the instant scores were derived as of, code versions);
`emission.json` (the canonical emission JSON, whose sha256 is the emission hash); and
`manifest.json`, the sha256 of every other member.

A checkpoint paid by the production rule (`TopKPerGroup`) ranks group leaderboards of round
scores, not the period's snapshots: its bundle holds `rounds` (the round scores the checkpoint
read, e.g. `density_round_scores`, taken as recorded), `models`, `snapshots` (for the Merkle root)
and `payouts` (its `checkpoint_payouts` rows) as Parquet, with the same JSON members;
`checkpoint.json` then also says `ranked_by: groups` and the pool amount the prizes were split from.

The archive is immutable: written once under a name made of the emission hash and the
manifest's own hash (`<home>/audit_bundles/<checkpoint>/<emission>-<manifest>.zip`), never
rewritten; a rebuild with other data is another file. Zip entries carry a fixed date, so the same
data always gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import polars as pl

from coordinator_dagster import group_lake
from coordinator_dagster.audit import derive, record
from coordinator_dagster.checkpoint_review import canonical_emission, emission_hash
from coordinator_dagster.lake.durable import replace_durably
from coordinator_dagster.lake import schemas

FORMAT = "coordinator-audit-bundle/1"
FRAMES = {
    "feed_records": schemas.FEED_RECORDS,
    "inputs": schemas.INPUTS,
    "predictions": schemas.PREDICTIONS,
    "ensemble_predictions": schemas.PREDICTIONS,
    "scores": schemas.SCORES,
    "snapshots": schemas.SNAPSHOTS,
    "models": schemas.MODELS,
}
MANIFEST = "manifest.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class NotBundled(ValueError):
    """A checkpoint whose numbers a bundle cannot re-derive (said why)."""


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_parquet(out, compression="zstd", statistics=False)
    return out.getvalue()


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, indent=1, default=str).encode() + b"\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_folder(home: str | os.PathLike[str], checkpoint_id: str) -> Path:
    return Path(home) / "audit_bundles" / checkpoint_id


def read_period(lake: Any, contract: Any, start: dt.datetime, end: dt.datetime) -> dict[str, pl.DataFrame]:
    """A period's frames as the lake holds them: everything its numbers are derived from."""
    horizon = max((p.resolve_horizon_seconds for p in contract.scheduled_predictions), default=0)
    # Truth of the period's last rounds lies past its end, entry prices just before its start.
    reach = dt.timedelta(seconds=horizon) + dt.timedelta(hours=1)
    return {
        "feed_records": lake.read_window("feed_records", start - reach, end + reach),
        "inputs": lake.read_window("inputs", start, end, column="round_ts"),
        "predictions": lake.read_window("predictions", start, end, column="round_ts"),
        "ensemble_predictions": lake.read_window("ensemble_predictions", start, end, column="round_ts"),
        "scores": lake.read_window("scores", start, end, column="round_ts").sort(derive.SCORE_KEY),
        "snapshots": lake.read_window("snapshots", start, end, column="period_start").sort(derive.SNAPSHOT_KEY),
        "models": lake.read("models"),
    }


def collect(lake: Any, contract: Any, checkpoint: dict[str, Any], now: dt.datetime) -> dict[str, bytes]:
    """The members of `checkpoint`'s bundle (a `checkpoints` row), read from the lake."""
    if not derive.ranks_snapshots(contract):
        return collect_groups(lake, contract, checkpoint)
    start, end = checkpoint["period_start"], checkpoint["period_end"]
    frames = read_period(lake, contract, start, end)
    emission = json.loads(checkpoint["emission"])
    members = {f"{name}.parquet": parquet_bytes(schemas.conform(frame, FRAMES[name], name)) for name, frame in frames.items()}
    try:
        members["contract.json"] = json_bytes(record.contract_record(contract))
    except record.RecordError as exc:
        raise NotBundled(f"{checkpoint['checkpoint_id']}: {exc}") from None
    members["emission.json"] = canonical_emission(emission).encode()
    members["checkpoint.json"] = json_bytes(
        {
            "checkpoint_id": checkpoint["checkpoint_id"],
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "ranking_key": checkpoint["ranking_key"],
            "entries": json.loads(checkpoint["entries"] or "[]"),
            "merkle_root": checkpoint["merkle_root"],
            "emission_hash": emission_hash(emission),
            "scored_as_of": derive.scored_as_of(contract, frames["predictions"], now).isoformat(),
            "scoring_version": contract.scoring_version,
            "code_version": record.code_version(),
        }
    )
    return members


def collect_groups(lake: Any, contract: Any, checkpoint: dict[str, Any]) -> dict[str, bytes]:
    """The members of a `TopKPerGroup` checkpoint's bundle: the round scores its group leaderboards
    were ranked from (as read, in read order: the window means depend on nothing else),
    the models, the period's snapshots (for the Merkle root) and its payout table."""
    cid, start, end = checkpoint["checkpoint_id"], checkpoint["period_start"], checkpoint["period_end"]
    rounds = group_lake.checkpoint_rounds(lake, contract, end)
    if group_lake.round_source(contract) == group_lake.DENSITY_TABLE:
        rounds = schemas.conform(rounds, schemas.DENSITY_ROUND_SCORES, group_lake.DENSITY_TABLE)
    table = lake.query("SELECT * FROM raw_checkpoint_payouts WHERE checkpoint_id = ?", [cid])
    table = schemas.conform(table.select(schemas.CHECKPOINT_PAYOUTS.names()), schemas.CHECKPOINT_PAYOUTS, "checkpoint_payouts").sort(derive.PAYOUT_KEY)
    pools = table["pool_amount"].unique().to_list()
    if len(pools) > 1:
        raise NotBundled(f"{cid}: its payout rows disagree on the pool amount: {pools}")
    emission = json.loads(checkpoint["emission"])
    members = {
        "rounds.parquet": parquet_bytes(rounds),
        "models.parquet": parquet_bytes(schemas.conform(lake.read("models"), schemas.MODELS, "models")),
        "snapshots.parquet": parquet_bytes(
            schemas.conform(lake.read_window("snapshots", start, end, column="period_start").sort(derive.SNAPSHOT_KEY), schemas.SNAPSHOTS, "snapshots")
        ),
        "payouts.parquet": parquet_bytes(table),
        "emission.json": canonical_emission(emission).encode(),
    }
    try:
        members["contract.json"] = json_bytes(record.contract_record(contract))
    except record.RecordError as exc:
        raise NotBundled(f"{cid}: {exc}") from None
    members["checkpoint.json"] = json_bytes(
        {
            "checkpoint_id": cid,
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "ranking_key": checkpoint["ranking_key"],
            "ranked_by": "groups",
            "round_source": group_lake.round_source(contract),
            "entries": json.loads(checkpoint["entries"] or "[]"),
            "merkle_root": checkpoint["merkle_root"],
            "emission_hash": emission_hash(emission),
            "pool_amount": pools[0] if pools else None,
            "scoring_version": contract.scoring_version,
            "code_version": record.code_version(),
        }
    )
    return members


def manifest(members: dict[str, bytes], checkpoint_id: str) -> bytes:
    return json_bytes({"format": FORMAT, "checkpoint_id": checkpoint_id, "sha256": {name: sha256(data) for name, data in sorted(members.items())}})


def archive(members: dict[str, bytes]) -> bytes:
    """The zip of `members` (the manifest included), entries in name order with a fixed date."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, members[name])
    return out.getvalue()


def write_bundle(home: str | os.PathLike[str], checkpoint_id: str, members: dict[str, bytes]) -> tuple[Path, bool]:
    """Write the bundle once (temporary name, then rename); (its path, whether it was new)."""
    listed = manifest(members, checkpoint_id)
    digest = sha256(listed)
    emission = sha256(members["emission.json"])
    folder = bundle_folder(home, checkpoint_id)
    path = folder / f"{emission[:16]}-{digest[:16]}.zip"
    if path.exists():
        return path, False
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.tmp"
    tmp.write_bytes(archive({**members, MANIFEST: listed}))
    replace_durably(tmp, path)
    return path, True


def build_bundle(lake: Any, contract: Any, checkpoint_id: str, now: dt.datetime) -> tuple[Path, bool]:
    """Collect and write `checkpoint_id`'s bundle; KeyError if there is no such checkpoint."""
    found = lake.query("SELECT * FROM checkpoints WHERE checkpoint_id = ?", [checkpoint_id])
    if not found.height:
        raise KeyError(f"no checkpoint {checkpoint_id!r}")
    return write_bundle(lake.home, checkpoint_id, collect(lake, contract, found.row(0, named=True), now))


def current_bundle(home: str | os.PathLike[str], checkpoint_id: str, current_emission_hash: str) -> Path | None:
    """The newest bundle of the checkpoint's current emission (None if none was written)."""
    found = sorted(bundle_folder(home, checkpoint_id).glob(f"{current_emission_hash[:16]}-*.zip"), key=lambda p: p.stat().st_mtime_ns)
    return found[-1] if found else None

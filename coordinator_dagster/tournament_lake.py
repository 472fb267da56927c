"""Tournament rounds in the lake: one Parquet file per round per table, the leaderboard as one
file, and the rounds' checkpoint events appended one file each.

Layout under `<home>/lake/tournament/`: `<table>/round=<round_id>/data.parquet` for the
round-partitioned tables (samples, predictions, truth, scores, snapshots, checkpoints),
`leaderboard/data.parquet`, and `checkpoint_events/<event>.parquet`. Files are written to a
dot-named temporary name and renamed into place (as every lake partition), so a reader sees a
round's old or new file, never half of one. The operator's uploads (the files the round sensor
watches) live beside the lake in `<home>/tournament/uploads/<round_id>/{features,truth}.json`.

Only storage lives here; what the rows mean is `coordinator_dagster.scoring.tournament`, and the
round's steps are `coordinator_dagster.tournament_rounds`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from coordinator_dagster.lake.durable import replace_durably
from coordinator_dagster.lake.locks import file_lock
from coordinator_dagster.lake.schemas import CHECKPOINT_EVENTS, UTC_TS
from coordinator_dagster.scoring.tournament import ROUND_PREDICTIONS, ROUND_SCORES, SAMPLES, TRUTH

# A round id names a folder and a Dagster partition: letters, digits, '_', '.' and '-'.
ROUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

ROUND_SNAPSHOTS = pl.Schema(
    {
        "round_id": pl.String,
        "model_id": pl.String,
        "period_start": UTC_TS,  # when the round's features were recorded
        "period_end": UTC_TS,  # when the round was scored
        "prediction_count": pl.Int64,
        "scored_count": pl.Int64,
        "failed_count": pl.Int64,
        "value": pl.Float64,  # mean score of the round's successful scores
        "result_summary": pl.String,  # JSON: means of the numeric score fields
    }
)
ROUND_CHECKPOINTS = pl.Schema(
    {
        "checkpoint_id": pl.String,  # the round id: one checkpoint per round
        "round_id": pl.String,
        "built_at": UTC_TS,
        "status": pl.String,  # as built (PENDING); later changes are checkpoint events
        "model_count": pl.Int64,
        "entries": pl.String,  # JSON list of ranked entries
        "emission": pl.String,  # JSON EmissionCheckpoint
        "merkle_root": pl.String,  # over the round's snapshots
    }
)

ROUND_TABLES: dict[str, pl.Schema] = {
    "samples": SAMPLES,
    "predictions": ROUND_PREDICTIONS,
    "truth": TRUTH,
    "scores": ROUND_SCORES,
    "snapshots": ROUND_SNAPSHOTS,
    "checkpoints": ROUND_CHECKPOINTS,
}
DATA_FILE = "data.parquet"


class BadRoundId(ValueError):
    """A round id that cannot name a folder and a partition."""


def check_round_id(round_id: str) -> str:
    if not isinstance(round_id, str) or not ROUND_ID.match(round_id):
        raise BadRoundId(f"round id {round_id!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return round_id


def _conform(frame: pl.DataFrame, schema: pl.Schema, table: str) -> pl.DataFrame:
    missing = [name for name in schema if name not in frame.columns]
    if missing:
        raise ValueError(f"tournament {table}: missing columns {missing}")
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


class RoundLake:
    """The tournament's tables in one node home."""

    def __init__(self, home: str | os.PathLike[str]):
        self.home = Path(home).expanduser().resolve()
        self.root = self.home / "lake" / "tournament"
        self.uploads = self.home / "tournament" / "uploads"

    # ---- paths ---------------------------------------------------------------------------------

    def round_path(self, table: str, round_id: str) -> Path:
        if table not in ROUND_TABLES:
            raise KeyError(f"unknown tournament table {table!r}; tables: {sorted(ROUND_TABLES)}")
        return self.root / table / f"round={check_round_id(round_id)}" / DATA_FILE

    def upload_path(self, round_id: str, kind: str) -> Path:
        """Where an operator drops a round's `features` or `truth` JSON for the round sensor."""
        if kind not in ("features", "truth"):
            raise ValueError(f"an upload is 'features' or 'truth', not {kind!r}")
        return self.uploads / check_round_id(round_id) / f"{kind}.json"

    @property
    def leaderboard_path(self) -> Path:
        return self.root / "leaderboard" / DATA_FILE

    # ---- writes --------------------------------------------------------------------------------

    @staticmethod
    def _write_atomic(path: Path, frame: pl.DataFrame) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            frame.write_parquet(tmp, compression="zstd", statistics=True)
            replace_durably(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def write_round(self, table: str, round_id: str, frame: pl.DataFrame) -> Path:
        path = self.round_path(table, round_id)
        self._write_atomic(path, _conform(frame, ROUND_TABLES[table], table))
        return path

    def write_leaderboard(self, frame: pl.DataFrame) -> Path:
        self._write_atomic(self.leaderboard_path, frame)
        return self.leaderboard_path

    def append_checkpoint_event(self, frame: pl.DataFrame) -> Path:
        folder = self.root / "checkpoint_events"
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        self._write_atomic(path, _conform(frame, CHECKPOINT_EVENTS, "checkpoint_events"))
        return path

    @contextlib.contextmanager
    def round_lock(self, round_id: str) -> Iterator[None]:
        """Serializes the read-check-write steps of one round (truth against its checkpoint's
        status, inference against existing predictions); other rounds never wait."""
        with file_lock(self.root)("rounds", check_round_id(round_id)):
            yield

    # ---- reads ---------------------------------------------------------------------------------

    def read_round(self, table: str, round_id: str) -> pl.DataFrame:
        """The round's rows of `table` (an empty frame of the table's schema when it has none)."""
        path = self.round_path(table, round_id)
        return pl.read_parquet(path) if path.is_file() else ROUND_TABLES[table].to_frame()

    def has_round(self, table: str, round_id: str) -> bool:
        return self.round_path(table, round_id).is_file()

    def read_all(self, table: str) -> pl.DataFrame:
        """Every round's rows of `table`."""
        if table not in ROUND_TABLES:
            raise KeyError(f"unknown tournament table {table!r}")
        files = sorted((self.root / table).glob(f"round=*/{DATA_FILE}"))
        if not files:
            return ROUND_TABLES[table].to_frame()
        return pl.concat([pl.read_parquet(f) for f in files], how="vertical")

    def rounds(self, table: str = "samples") -> list[str]:
        return sorted(p.parent.name.split("=", 1)[1] for p in (self.root / table).glob(f"round=*/{DATA_FILE}"))

    def read_leaderboard(self) -> pl.DataFrame | None:
        return pl.read_parquet(self.leaderboard_path) if self.leaderboard_path.is_file() else None

    def read_checkpoint_events(self, round_id: str | None = None) -> pl.DataFrame:
        files = sorted((self.root / "checkpoint_events").glob("*.parquet"))
        events = pl.concat([pl.read_parquet(f) for f in files], how="vertical") if files else CHECKPOINT_EVENTS.to_frame()
        return events.filter(checkpoint_id=round_id) if round_id is not None else events

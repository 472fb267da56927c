"""Scoring many hour partitions in one pass, and a scoring cycle whose cost follows what changed.

Plain functions over the contract, the clock's "now" and the lake; no Dagster. The `scores`,
`snapshots` and `leaderboard` assets call `score_window`, `snapshot_window` and
`build_leaderboard`; a long-lived process (the round engine) calls `score_hours` for a
micro-batch of hours, or keeps a `ScoringCycle` and calls `run` each time new rounds are due.

Why batches: the per-partition cost (open, decode, flush, rename) dominated the per-row cost of
vectorized scoring, so a range is read in one scan per table, scored in one pass, and its
partitions written in a few threads. The cycle's leaderboard and checkpoint standing are the same
functions over the same snapshot rows as a full rebuild (so byte-identical to it); only the
reading is incremental: an hour's snapshot file is decoded again only once it changed.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from coordinator_dagster.lake import batches
from coordinator_dagster.lake.layout import scan_window_files, window_start_of_file
from coordinator_dagster.scoring import ranking
from coordinator_dagster.scoring.ensembles import build_ensembles
from coordinator_dagster.scoring.late_track import late_predictions, score_late
from coordinator_dagster.scoring.merkle import build_checkpoint_tree, chain_cycles, hash_cycles
from coordinator_dagster.scoring.scores import default_resolve_ground_truth, score_predictions
from coordinator_dagster.scoring.snapshots import build_snapshots
from coordinator_dagster.scoring.top_k_rewards import TopKPerGroup
from coordinator_dagster.windows import window_key, window_keys_between, window_start

if TYPE_CHECKING:
    from coordinator_dagster.contracts import CrunchContract
    from coordinator_dagster.lake.store import Lake

HOUR = dt.timedelta(hours=1)
# What the default ground truth reads of an input; the 60-record windows are most of an input
# file's bytes, and a custom truth rule gets whole inputs.
_TRUTH_INPUT_COLUMNS = ("input_id", "scope_key", "subject", "round_ts", "resolvable_at")


def truth_reach(contract: "CrunchContract", step_seconds: int) -> dt.timedelta:
    """How far around a window the feed must be read to resolve its rounds: the longest horizon
    plus one feed step (the entry price of the first round closes the step before it)."""
    horizon = max((p.resolve_horizon_seconds for p in contract.scheduled_predictions), default=0)
    return dt.timedelta(seconds=horizon + step_seconds)


@dataclass(frozen=True)
class ScoredWindow:
    keys: list[str]
    predictions: pl.DataFrame
    scores: pl.DataFrame  # real models' and ensembles' scores, as written
    ensemble_predictions: pl.DataFrame | None  # None without ensembles in the contract
    writes: tuple[Future, ...] = ()  # partition writes still under way (with a `writer`)

    def wait_written(self) -> None:
        """Return once every partition of this window is in place (raising a write's error)."""
        for write in self.writes:
            write.result()


def score_window(
    lake: "Lake",
    contract: "CrunchContract",
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    step_seconds: int,
    writer: ThreadPoolExecutor | None = None,
) -> ScoredWindow:
    """Score every hour of [start, end) in one pass and write each hour's scores partition (and,
    with ensembles, their predictions): the `scores` asset's work for a range. With `writer`
    the scores are written in its thread while the caller goes on (`wait_written`)."""
    keys = window_keys_between(start, end)
    reach = truth_reach(contract, step_seconds)
    preds = batches.read_window_files(lake, "predictions", start, end)
    columns = _TRUTH_INPUT_COLUMNS if contract.resolve_ground_truth is default_resolve_ground_truth else None
    inputs = batches.read_window_files(lake, "inputs", start, end, columns)
    truth_feed = batches.read_window_files(lake, "feed_records", start - reach, end + reach)
    out = score_predictions(contract, preds, inputs, truth_feed, now)
    _score_late_hours(lake, contract, preds, inputs, truth_feed, now)
    ensemble = None
    if contract.ensembles:
        # Ensemble weights come from the scores before each hour: earlier hours from the lake,
        # hours of this range from this pass's real-model scores.
        lookback = dt.timedelta(hours=max(e.lookback_hours for e in contract.ensembles))
        history = pl.concat([lake.read_window("scores", start - lookback, start, column="round_ts"), out])
        ensemble = build_ensembles(contract, preds, history, [window_start(k) for k in keys])
        batches.write_window_frames(lake, "ensemble_predictions", ensemble, "round_ts", keys)
        out = pl.concat([out, score_predictions(contract, ensemble, inputs, truth_feed, now)])
    if writer is None:
        batches.write_window_frames(lake, "scores", out, "round_ts", keys)
        return ScoredWindow(keys, preds, out, ensemble)
    return ScoredWindow(keys, preds, out, ensemble, (writer.submit(batches.write_window_frames, lake, "scores", out, "round_ts", keys),))


def _score_late_hours(
    lake: "Lake", contract: "CrunchContract", preds: pl.DataFrame, inputs: pl.DataFrame, feed: pl.DataFrame, now: dt.datetime
) -> None:
    """Rewrite `late_scores` for the hours that hold LATE predictions only; most hours have none
    and get no file (predictions are facts, so an hour gains LATE rows only while still live)."""
    late = late_predictions(preds)
    if late.is_empty():
        return
    hours = late["round_ts"].dt.truncate("1h").unique().sort()
    batches.write_window_frames(lake, "late_scores", score_late(contract, late, inputs, feed, now), "round_ts", [window_key(h) for h in hours])


def snapshot_window(
    lake: "Lake", contract: "CrunchContract", start: dt.datetime, end: dt.datetime, scored: ScoredWindow | None = None
) -> pl.DataFrame:
    """Build and write the snapshots of every hour of [start, end): the `snapshots` asset's
    work. With `scored` (from `score_window` over the same range) nothing is read again."""
    keys = window_keys_between(start, end)
    if scored is None:
        preds = batches.read_window_files(lake, "predictions", start, end)
        scores = batches.read_window_files(lake, "scores", start, end)
        ensemble = batches.read_window_files(lake, "ensemble_predictions", start, end)
    else:
        preds, scores, ensemble = scored.predictions, scored.scores, scored.ensemble_predictions
    out = build_snapshots(contract, preds, scores, start, end, ensemble)
    if scored is not None:
        scored.wait_written()  # an hour's snapshots are never in place before its scores
    batches.write_window_frames(lake, "snapshots", out, "period_start", keys)
    return out


def score_hours(
    lake: "Lake", contract: "CrunchContract", start: dt.datetime, end: dt.datetime, now: dt.datetime, truth_step_seconds: int
) -> tuple[ScoredWindow, pl.DataFrame]:
    """Scores and snapshots of every hour of [start, end), read once and written per hour: what a
    micro-batch of a long-lived engine (or a re-score of a range) calls. The scores are written
    while the snapshots are built (flushing files is mostly waiting on the disk)."""
    with ThreadPoolExecutor(1) as writer:
        scored = score_window(lake, contract, start, end, now, truth_step_seconds, writer)
        return scored, snapshot_window(lake, contract, start, end, scored)


def leaderboard_window(lake: "Lake", contract: "CrunchContract") -> tuple[dt.datetime, dt.datetime] | None:
    """The snapshot hours the leaderboard reads: the longest window ending at the newest hour."""
    # os.scandir over the hour folders, newest first, rather than a glob of every file.
    newest = next((f for f in reversed(scan_window_files(lake.table_dir("snapshots"))) if os.path.isfile(f)), None)
    if newest is None:
        return None
    newest_start = window_start_of_file(newest)
    longest = dt.timedelta(hours=max(contract.aggregation.windows.values()))
    return newest_start + HOUR - longest, newest_start + HOUR


def build_leaderboard(
    lake: "Lake", contract: "CrunchContract", now: dt.datetime, snapshot_files: batches.SnapshotFiles | None = None
) -> pl.DataFrame:
    """Rank, then write `leaderboard` and this hour's `leaderboard_history` (the `leaderboard`
    asset's work). With `snapshot_files`, only changed snapshot hours are read again."""
    window = leaderboard_window(lake, contract)
    if window is None:
        recent = lake.read_paths("snapshots", [])
    elif snapshot_files is not None:
        recent = snapshot_files.read_window(*window)
    else:
        recent = lake.read_window("snapshots", *window)
    board = ranking.leaderboard(contract, recent, lake.read("models"), now)
    write_leaderboard(lake, board)
    return board


def write_leaderboard(lake: "Lake", board: pl.DataFrame) -> None:
    """`board` as the current leaderboard and as its hour's `leaderboard_history`."""
    if not board.height:
        lake.write("leaderboard", board)
        return
    # The two files are flushed side by side (a flush is mostly waiting on the disk).
    with ThreadPoolExecutor(1) as writer:
        # An as_of on the hour closes the previous hour's ranking; keep it in that hour.
        history = writer.submit(lake.write, "leaderboard_history", board, window_key(board["as_of"][0] - dt.timedelta(microseconds=1)))
        lake.write("leaderboard", board)
        history.result()


@dataclass(frozen=True)
class Standing:
    """Where the current checkpoint period stands: its ranked entries, the emission they would
    get and the Merkle root over its snapshots, as the checkpoint asset would build them now."""

    entries: list[dict[str, Any]]
    emission: dict[str, Any]
    merkle_root: str | None


def checkpoint_standing(
    contract: "CrunchContract", period: pl.DataFrame, models: pl.DataFrame, merkle_root: str | None = None
) -> Standing:
    """The default rule's checkpoint over one period's snapshots (`ranking.checkpoint_entries`,
    the contract's `build_emission`, `build_checkpoint_tree`; pass `merkle_root` when the
    caller has it from hashed cycles it kept)."""
    root = merkle_root if merkle_root is not None else build_checkpoint_tree(period.to_dicts()).checkpoint_root
    return _standing(contract, ranking.checkpoint_entries(contract, period, models), root)


def _standing(contract: "CrunchContract", entries: list[dict[str, Any]], merkle_root: str | None) -> Standing:
    emission = contract.build_emission(entries, contract.crunch_pubkey, contract.compute_provider, contract.data_provider)
    return Standing(entries, emission.model_dump(mode="json"), merkle_root)


@dataclass(frozen=True)
class CycleResult:
    keys: list[str]
    scores: pl.DataFrame
    snapshots: pl.DataFrame
    leaderboard: pl.DataFrame
    standing: Standing | None
    seconds: dict[str, float]


class ScoringCycle:
    """The steady scoring loop of a long-lived process: each `run` scores the hours holding newly
    due predictions, rewrites their snapshots, the leaderboard and the current checkpoint
    period's standing, reading back only the snapshot hours that changed since the last run.

    The standing is kept per hour of the period (each hour's checkpoint rows and Merkle cycles,
    made again only when its snapshot file changed) and rebuilt only when the run touched the
    period; the ranking and emission over the kept rows are those of a full rebuild."""

    def __init__(self, lake: "Lake", contract: "CrunchContract", truth_step_seconds: int, period: tuple[dt.datetime, dt.datetime] | None = None):
        self.lake, self.contract, self.step = lake, contract, truth_step_seconds
        self.period = period
        self._board_files = batches.SnapshotFiles(lake)
        self._period_files = batches.SnapshotFiles(lake)
        self._standing: tuple[Any, Standing] | None = None  # (the period files' version, standing)
        self._models: tuple[Any, pl.DataFrame | None] = (None, None)  # (the models file's identity, its rows)

    def run(self, now: dt.datetime, start: dt.datetime, end: dt.datetime) -> CycleResult:
        seconds = {}
        t = time.perf_counter()
        scored, snaps = score_hours(self.lake, self.contract, start, end, now, self.step)
        seconds["scores"] = time.perf_counter() - t
        t = time.perf_counter()
        board = build_leaderboard(self.lake, self.contract, now, self._board_files)
        seconds["leaderboard"] = time.perf_counter() - t
        standing = None
        # The production rule's standing is per group over round scores, not snapshots.
        if self.period is not None and not isinstance(self.contract.build_emission, TopKPerGroup):
            t = time.perf_counter()
            standing = self._period_standing(*self.period)
            seconds["checkpoint"] = time.perf_counter() - t
        return CycleResult(scored.keys, scored.scores, snaps, board, standing, seconds)

    def _period_standing(self, start: dt.datetime, end: dt.datetime) -> Standing:
        """`checkpoint_standing` over the period's snapshots, from what is kept per hour file;
        the last standing again when none of the period's files changed."""
        contract = self.contract
        models_path = self.lake.partition_path("models")
        self.lake.storage.sync_files([models_path])
        # Per hour file, made again only when it changed: its checkpoint rows and its cycle's
        # Merkle hashes (the chain over them is re-linked only when some hour changed).
        files, derived = self._period_files.derived_many(
            start, end, "period_start", {"rows": lambda f: ranking.checkpoint_rows(contract, f), "merkle": hash_cycles}
        )
        # The models table names and orders crunchers: a changed registry changes the standing too.
        version = (files, batches.file_identity(models_path))
        if self._standing is not None and self._standing[0] == version:
            return self._standing[1]
        rows = derived["rows"]
        tree = chain_cycles(c for cycles in derived["merkle"] for c in cycles)
        if version[1] != self._models[0]:
            self._models = (version[1], self.lake.read("models"))
        # Every hour's rows are conformed to one schema: a plain (eager) concat stacks them.
        entries = ranking.rank_checkpoint_rows(contract, pl.concat(rows, how="vertical").rechunk(), self._models[1]) if rows else []
        standing = _standing(contract, entries, tree.checkpoint_root)
        self._standing = (version, standing)
        return standing

"""`RoundEngine`: live rounds predicted the moment the record closing them lands.

Each pass (`step`) finds, per active scheduled prediction, the rounds due since the newest one
recorded, and for each round whose closing record is in the lake: builds its inputs with the
inputs asset's code (`span_inputs`), merges them into the hour's `inputs` partition, asks the
runner and appends the answers to the hour's `predictions` partition, then reports both as
materializations through the `Reporter` (the CLI binds it to the Dagster instance). While it
serves, reports go through a `ReportQueue` thread and the micro-batch scorer runs on a thread of
its own, so neither holds up the next round; the hours' segment files and their compaction are
`HourAppends`'.

Exactly once: the predictions are written under the partition lock the `predictions` asset
takes, and only for inputs the partition does not hold, so a round recorded by anyone (this
engine before a restart, a catch-up run) is never predicted again. A round asked after its
cutoff (`late_cutoff_seconds`, default one interval) is still asked, and its valid answers are
recorded LATE (the late track, never rewarded); rounds further back than BACKLOG are left to the
predict sensor's catch-up runs, which record them ABSENT as missed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.domain_types import ScheduledPrediction
from coordinator_dagster.engine.outbox import Entry, Outbox
from coordinator_dagster.engine.report_queue import ReportQueue
from coordinator_dagster.engine.timing import append_timing, stage_metadata
from coordinator_dagster.engine.hour_appends import SEGMENTED, HourAppends
from coordinator_dagster.lake.segments import clean_staging
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.prediction_rows import late_track, predict_rows, registry
from coordinator_dagster.models.round_inputs import span_inputs
from coordinator_dagster.models.rounds import round_stamp
from coordinator_dagster.models.runner import RoundRunner
from coordinator_dagster.windows import window_key

log = logging.getLogger("coordinator.rounds")

ENGINE_DIR = "engine"
HEARTBEAT_FILE = "heartbeat"
# The predict sensor leaves live rounds to an engine whose heartbeat is at most this old.
ALIVE_SECONDS = 10.0
# Rounds further back than this after a restart are left to the predict sensor's catch-up runs.
BACKLOG = dt.timedelta(hours=1)
RUNNER_RETRY_SECONDS = 1.0
ROUND_KEY = "engine_round"  # metadata key naming the round a report is for


class Reporter(Protocol):
    """Where the engine's materializations go (the Dagster instance, bound by the CLI)."""

    def report(self, table: str, partition: str, description: str, metadata: dict[str, Any]) -> None: ...

    def reported(self, table: str, partition: str, round_stamp: str) -> bool: ...


def engine_dir(home: str | os.PathLike[str]) -> Path:
    return Path(home) / ENGINE_DIR


def engine_alive(home: str | os.PathLike[str], now: float | None = None) -> bool:
    """Whether a round engine on this home beat within ALIVE_SECONDS."""
    try:
        beat = (engine_dir(home) / HEARTBEAT_FILE).stat().st_mtime
    except FileNotFoundError:
        return False
    return (time.time() if now is None else now) - beat <= ALIVE_SECONDS


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _us(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _wall_us() -> int:
    """Stage stamps are wall-clock time (as the feed file's modification time is), whatever the
    engine's clock says about which rounds are due."""
    return time.time_ns() // 1000


def _floor(now: dt.datetime, interval: int) -> dt.datetime:
    epoch = int(now.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % interval, tz=dt.timezone.utc)


class RoundEngine:
    def __init__(
        self,
        lake: Lake,
        contract: CrunchContract,
        step_seconds: int,
        open_runner: Callable[[], RoundRunner],
        reporter: Reporter | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
        manifest: str | os.PathLike[str] | None = None,
    ):
        self.lake, self.contract, self.step_seconds = lake, contract, step_seconds
        # MODELS_MANIFEST: the runner is opened again when it changes (models added or removed).
        self.manifest = Path(manifest) if manifest else None
        self._manifest_stamp: tuple[int, int] | None = None
        self.open_runner, self.reporter, self.clock = open_runner, reporter, clock
        self.dir = engine_dir(lake.home)
        self.outbox = Outbox(self.dir)
        self.done: dict[str, dt.datetime | None] = {}
        self._unstarted: set[str] = set()  # scopes whose first round, on an empty home, is not recorded yet
        self._runner: RoundRunner | None = None
        self._runner_retry_at = 0.0
        self._feed_seen: dict[str, tuple[tuple[int, int], set[tuple[str, dt.datetime]], int]] = {}
        self._wake = threading.Event()
        self.rounds_recorded = 0
        self.reports = ReportQueue()
        self.scorer: Any = None  # a MicroScorer with ROUND_ENGINE_SCORING (set by the CLI)
        self.hours = HourAppends(lake)  # the hours this engine appends rounds to

    # ---- start and stop ------------------------------------------------------------------------

    def start(self) -> None:
        """Repair what a crash left unreported, and find the newest recorded round per scope."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.repair()
        clean_staging(self.lake.root)
        now = self.clock()
        self.hours.compact_left_open(now)
        for scheduled in self._schedule():
            self.done[scheduled.scope_key] = self._newest_recorded(scheduled, now)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def repair(self) -> list[str]:
        """Report the rounds written but maybe not reported before a crash; the rounds repaired."""
        repaired = []
        for entry in self.outbox.entries():
            recorded = self.lake.read("predictions", entry.partition).filter(pl.col("input_id").is_in(entry.input_ids))
            if not recorded.is_empty():
                rows = self.lake.read("inputs", entry.partition).filter(pl.col("input_id").is_in(entry.input_ids)).height
                self._report(entry, {"inputs": rows, "predictions": recorded.height}, repaired=True)
                repaired.append(entry.round_stamp)
            self.outbox.drop(entry.round_stamp)
        if repaired:
            log.info("reported after a restart: rounds %s", ", ".join(repaired))
        return repaired

    def _schedule(self) -> list[ScheduledPrediction]:
        return [p for p in self.contract.scheduled_predictions if p.active]

    def _newest_recorded(self, scheduled: ScheduledPrediction, now: dt.datetime) -> dt.datetime | None:
        hour = now.replace(minute=0, second=0, microsecond=0)
        for key in (window_key(hour), window_key(hour - dt.timedelta(hours=1))):
            frame = self.lake.read("predictions", key).filter(pl.col("scope_key") == scheduled.scope_key)
            if frame.height:
                return frame["round_ts"].max()
        return None

    # ---- the loop ------------------------------------------------------------------------------

    def notify(self) -> None:
        """A feed write happened: look now rather than at the next poll."""
        self._wake.set()

    def serve(self, stop: threading.Event, poll_seconds: float = 0.02) -> None:
        self.start()
        # Reports and scoring run beside the loop: neither may hold up the next round.
        self.reports.start()
        scoring = None
        beat = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() - beat >= 1.0:
                    self._beat()
                    beat = time.monotonic()
                try:
                    self.step()
                except Exception:  # noqa: BLE001 - one bad pass must not end live predictions
                    log.exception("round engine pass failed; retrying")
                    stop.wait(RUNNER_RETRY_SECONDS)
                if scoring is None and self.scorer is not None:  # once the first pass caught up
                    scoring = threading.Thread(target=self._score_loop, args=(stop,), name="round-engine-scorer", daemon=True)
                    scoring.start()
                self._wake.wait(poll_seconds)
                self._wake.clear()
        finally:
            if scoring is not None:
                scoring.join(60)
            self.reports.stop()
            self.close()

    def _score_loop(self, stop: threading.Event) -> None:
        """The micro-batch scorer, every `every_seconds` from the start of one pass to the next."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.scorer.step(self.clock())
            except Exception:  # noqa: BLE001 - a failed pass is retried at the next one
                log.exception("micro-batch scoring pass failed; retrying")
            stop.wait(max(0.0, self.scorer.every_seconds - (time.monotonic() - started)))

    def _beat(self) -> None:
        path = self.dir / HEARTBEAT_FILE
        path.touch()
        os.utime(path)

    def step(self) -> list[dt.datetime]:
        """One pass: record every due round whose closing record has landed; the rounds recorded."""
        now = self.clock()
        ready: dict[dt.datetime, list[ScheduledPrediction]] = {}
        for scheduled in self._schedule():
            for round_ts in self._due(scheduled, now):
                if self._landed(scheduled.scope.subject, round_ts) is None:
                    if scheduled.scope_key in self._unstarted:
                        continue  # the feed may have begun after this first round: a later one may be ready
                    break  # later rounds need later data still
                ready.setdefault(round_ts, []).append(scheduled)
        recorded = []
        for round_ts in sorted(ready):
            if self._record(round_ts, ready[round_ts], now):
                recorded.append(round_ts)
        self.hours.compact_closed(now)
        self.hours.compact_crowded()
        return recorded

    def _due(self, scheduled: ScheduledPrediction, now: dt.datetime) -> list[dt.datetime]:
        interval = dt.timedelta(seconds=scheduled.prediction_interval_seconds)
        due = _floor(now, scheduled.prediction_interval_seconds)
        last = self.done.get(scheduled.scope_key)
        if last is None:
            # A first start: rounds from before the node existed are not missed, but the round
            # due now is this scope's first, kept even if its closing record lands after `now`
            # has moved on to the next round (until a later round is recorded: `_unstarted`).
            last = self.done[scheduled.scope_key] = due - interval
            self._unstarted.add(scheduled.scope_key)
        first = max(last + interval, due - BACKLOG)
        rounds = []
        while first <= due:
            rounds.append(first)
            first += interval
        return rounds

    def _landed(self, subject: str, round_ts: dt.datetime) -> int | None:
        """When (µs, the feed file's modification time) the record closing `round_ts` for
        `subject` landed; None while it has not. The hour file is re-read only when it changed."""
        closing = round_ts - dt.timedelta(seconds=self.step_seconds)
        key = window_key(closing)
        path = self.lake.partition_path("feed_records", key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        identity = (stat.st_mtime_ns, stat.st_size)
        cached = self._feed_seen.get(key)
        if cached is None or cached[0] != identity:
            # Kept as a set: this is asked for every due scope at every pass (every 20 ms), and a
            # frame filter per ask cost more than the rest of the idle loop.
            frame = self.lake.read("feed_records", key).select("subject", "ts_event")
            cached = (identity, set(frame.iter_rows()), stat.st_mtime_ns // 1000)
            self._feed_seen.pop(key, None)
            self._feed_seen[key] = cached
            while len(self._feed_seen) > 4:  # the newest hours are the ones rounds close in
                self._feed_seen.pop(next(iter(self._feed_seen)))
        return cached[2] if (subject, closing) in cached[1] else None

    def _manifest_changed(self) -> bool:
        """Whether MODELS_MANIFEST changed since the runner was opened (notes the new version)."""
        if self.manifest is None:
            return False
        try:
            stat = self.manifest.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        changed, self._manifest_stamp = stamp != self._manifest_stamp, stamp
        return changed

    def _runner_or_none(self) -> RoundRunner | None:
        if self._manifest_changed() and self._runner is not None:
            # A runner registers its models when opened: open it again for the new manifest (the
            # model runner service syncs its workers with the manifest at its next round).
            log.info("models manifest %s changed: opening the model runner again", self.manifest)
            self.close()
        if self._runner is None and time.monotonic() >= self._runner_retry_at:
            try:
                self._runner = self.open_runner()
            except Exception as error:  # noqa: BLE001 - the runner service may still be starting
                log.warning("model runner not reachable (%s: %s); retrying", type(error).__name__, error)
                self._runner_retry_at = time.monotonic() + RUNNER_RETRY_SECONDS
                return None
            with self.lake.partition_lock("models"):
                self.lake.write("models", registry(self._runner.specs, self._runner.statuses, self.lake.read("models"), self.clock()))
        return self._runner

    # ---- one round -----------------------------------------------------------------------------

    def _record(self, round_ts: dt.datetime, scopes: list[ScheduledPrediction], now: dt.datetime) -> bool:
        runner = self._runner_or_none()
        if runner is None:
            return False
        # Asked after its cutoff (the engine was behind, or restarted): the late track.
        late_keys = {s.scope_key for s in scopes if (now - round_ts).total_seconds() > self._cutoff(s)}
        stamp = round_stamp(round_ts)
        timing: dict[str, Any] = {"round": stamp, "round_us": _us(round_ts), "seen_us": _wall_us()}
        timing["landed_us"] = max(self._landed(s.scope.subject, round_ts) or 0 for s in scopes)
        key = window_key(round_ts)
        built = span_inputs(self.lake, self.contract, self.step_seconds, round_ts, round_ts + dt.timedelta(microseconds=1), now, scopes)
        with self.lake.partition_lock("inputs", key):
            fresh_inputs = built.filter(~pl.col("input_id").is_in(list(self.hours.recorded_ids("inputs", key))))
            if not fresh_inputs.is_empty():
                self.hours.append("inputs", key, fresh_inputs)
        timing["inputs_us"] = _wall_us()
        entry = Entry(stamp, key, built["input_id"].to_list(), timing)
        self.outbox.put(entry)
        with self.lake.partition_lock("predictions", key):
            todo = built.filter(~pl.col("input_id").is_in(list(self.hours.recorded_ids("predictions", key))))
            if todo.is_empty():
                self.outbox.drop(stamp)  # recorded already (before a restart, or by a catch-up run)
                self._mark_done(round_ts, scopes)
                return False
            try:
                fresh = late_track(predict_rows(runner, todo, now), late_keys)
            except Exception:
                # The runner failed the whole round (service gone): nothing was written; the
                # round is retried on a runner opened afresh.
                self.close()
                self.outbox.drop(stamp)
                raise
            timing["models_us"] = _wall_us()
            self.hours.append("predictions", key, fresh.sort(*SEGMENTED["predictions"]))
        timing["persisted_us"] = _wall_us()
        timing.update(subjects=len(scopes), predictions=fresh.height)
        rows = {"inputs": built.height, "predictions": fresh.height}

        def finish() -> None:  # on the report thread while serving: the next round need not wait
            self._report(Entry(stamp, key, entry.input_ids, timing), rows, statuses=fresh)
            timing["reported_us"] = _wall_us()
            self.outbox.drop(stamp)
            append_timing(self.dir, timing)

        self.reports.submit(finish)
        self._mark_done(round_ts, scopes)
        self.rounds_recorded += 1
        return True

    def _cutoff(self, scheduled: ScheduledPrediction) -> float:
        return float(self.contract.late_cutoff_seconds or scheduled.prediction_interval_seconds)

    def _mark_done(self, round_ts: dt.datetime, scopes: list[ScheduledPrediction]) -> None:
        for scheduled in scopes:
            self._unstarted.discard(scheduled.scope_key)
            last = self.done.get(scheduled.scope_key)
            if last is None or round_ts > last:
                self.done[scheduled.scope_key] = round_ts

    def _report(self, entry: Entry, rows: dict[str, int], *, repaired: bool = False, statuses: pl.DataFrame | None = None) -> None:
        if self.reporter is None:
            return
        timings = stage_metadata(entry.timing)
        for table in ("inputs", "predictions"):
            if repaired and self.reporter.reported(table, entry.partition, entry.round_stamp):
                continue
            metadata: dict[str, Any] = {ROUND_KEY: entry.round_stamp, "new_rows": rows[table], "written_by": "round engine"}
            if table == "predictions":
                metadata.update(timings)
                if statuses is not None:
                    metadata["new_by_status"] = {str(k): int(v) for k, v in statuses.group_by("status").len().iter_rows()}
            if repaired:
                metadata["repaired_after_restart"] = True
            how = "reported after a restart" if repaired else "live round"
            self.reporter.report(table, entry.partition, f"round {entry.round_stamp} by the round engine ({how})", metadata)

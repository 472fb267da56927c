"""`MicroScorer`: the round engine's opt-in scoring (ROUND_ENGINE_SCORING), in micro-batches.

Every few seconds (`SCORE_EVERY_SECONDS`) it asks the score sensor's own rule
(`round_schedule.due_score_rounds`: truth landed, feed checks passed, closing passes) which
rounds are due since the ones it scored, scores the hours holding them in one `ScoringCycle`
pass (scores, snapshots, leaderboard: byte-identical to the assets' rebuild) and reports the
written partitions as runless materializations through the engine's `Reporter`.

Never twice: what it scored is its cursor, kept in `engine/scored.json` (same shape as the score
sensor's cursor). The file is rewritten after every successful pass, so its age says whether the
scorer is alive: the score sensor passes over the rounds in it and, while it is fresh, leaves
newly due rounds to the engine (`engine_scoring`). A dead scorer's rounds go back to the sensor.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from coordinator_dagster.feeds.checks import FeedCheckConfig
from coordinator_dagster.models.rounds import parse_round_stamp, round_stamp
from coordinator_dagster.round_schedule import CATCH_UP_HOURS, CLOSED_KEY, due_score_rounds
from coordinator_dagster.scoring_batches import CycleResult, ScoringCycle
from coordinator_dagster.windows import window_key

if TYPE_CHECKING:
    from coordinator_dagster.contracts import CrunchContract
    from coordinator_dagster.lake.store import Lake

log = logging.getLogger("coordinator.rounds")

SCORED_FILE = "scored.json"
SCORE_EVERY_SECONDS = 2.0
# The score sensor leaves due rounds to a scorer whose file is at most this old.
SCORER_ALIVE_SECONDS = 15.0
HOUR = dt.timedelta(hours=1)


def _scored_path(home: str | os.PathLike[str]) -> Path:
    from coordinator_dagster.engine.round_engine import engine_dir  # the engine's folder; no cycle at import

    return engine_dir(home) / SCORED_FILE


def engine_scoring(home: str | os.PathLike[str], now: float | None = None) -> tuple[dict[str, str], bool]:
    """(the engine scorer's cursor, whether it is alive): what the score sensor passes over."""
    path = _scored_path(home)
    try:
        stat = path.stat()
        cursor = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}, False
    return cursor, (time.time() if now is None else now) - stat.st_mtime <= SCORER_ALIVE_SECONDS


def _hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class MicroScorer:
    def __init__(
        self,
        lake: "Lake",
        contract: "CrunchContract",
        step_seconds: int,
        reporter: Any = None,
        config: FeedCheckConfig | None = None,
        first_hour: dt.datetime | None = None,
    ):
        # `first_hour`: the partitions start (PARTITIONS_START); earlier hours hold nothing of this
        # node (a first start's closing pass can reach back before its data).
        self.first_hour = _hour(first_hour) if first_hour is not None else None
        self.lake, self.contract, self.step_seconds, self.reporter = lake, contract, step_seconds, reporter
        self.config = config or FeedCheckConfig.for_step(step_seconds)
        self.cycle = ScoringCycle(lake, contract, step_seconds)
        self.cursor, _ = engine_scoring(lake.home)
        self.every_seconds = SCORE_EVERY_SECONDS

    def step(self, now: dt.datetime) -> CycleResult | None:
        """Score the rounds due since the last pass (None: nothing due); always marks the scorer alive."""
        requests, new_cursor, _waiting = due_score_rounds(self.contract, self.lake, self.step_seconds, now, self.cursor, self.config)
        result = None
        if requests:
            # From the hour of the oldest round scored before (its hour's later rounds became due
            # since), so a batch crossing an hour boundary leaves nothing behind in the earlier hour.
            earlier = [parse_round_stamp(v) for k, v in self.cursor.items() if k != CLOSED_KEY and v]
            newest = _hour(max(requests)) + HOUR
            start = max(min([_hour(r) for r in requests] + [_hour(e) for e in earlier]), newest - CATCH_UP_HOURS * HOUR)
            if self.first_hour is not None:
                start = max(start, self.first_hour)
            if start < newest:
                result = self.cycle.run(now, start, newest)
                self._report(result, requests)
        self.cursor = new_cursor
        self._save()
        return result

    def _save(self) -> None:
        path = _scored_path(self.lake.home)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(self.cursor, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def _report(self, result: CycleResult, requests: dict[dt.datetime, list[str]]) -> None:
        if self.reporter is None:
            return
        rounds = ", ".join(round_stamp(r) for r in sorted(requests))
        common = {"written_by": "round engine", "scored_rounds": rounds, **{f"{k}_seconds": round(v, 4) for k, v in result.seconds.items()}}
        for table, frame, column in (("scores", result.scores, "round_ts"), ("snapshots", result.snapshots, "period_start")):
            counts = {window_key(h): n for h, n in frame.group_by(pl.col(column).dt.truncate("1h")).len().iter_rows()}
            for key in result.keys:
                self.reporter.report(table, key, f"micro-batch scoring by the round engine ({rounds})", {**common, "rows": counts.get(key, 0)})
        self.reporter.report("leaderboard", None, f"micro-batch scoring by the round engine ({rounds})", {**common, "rows": result.leaderboard.height})
        log.info("scored rounds %s (%s) in %s", rounds, ", ".join(result.keys), ", ".join(f"{k} {v:.3f} s" for k, v in result.seconds.items()))

"""Which prediction rounds are due to be predicted or scored, from the contract, the clock and
the lake: the decisions the predict and score sensors act on, as plain functions.

A plan keeps a cursor (JSON, per scope: the newest round already requested), names each run with
a deterministic key (`predict:<round>`, `score:<round>`, `close:<hour>`,
`predict-catch-up:<hour>`) so a round is never requested twice, and says why it waits. The lake
is read only to check that the feed data a round needs has landed (and passes the blocking feed
checks) and whether a round's predictions were recorded. Dagster is not involved: the sensors in
`sensors/rounds.py` turn a plan into run requests.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import polars as pl

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.feeds import checks as feed_checks
from coordinator_dagster.feeds.checks import FeedCheckConfig
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG, parse_round_stamp, round_stamp
from coordinator_dagster.scoring.scores import with_close_ts
from coordinator_dagster.partitions import window_key

CLOSED_KEY = "closed-hour"  # score cursor entry: the newest hour given its final scoring pass
# A live run records the missed rounds of its own hour; a gap across an hour boundary (node down,
# or a failed run at the end of an hour) is recorded by catch-up runs of the earlier hours, up to
# this many hours back.
CATCH_UP_HOURS = 24
# The candle that makes round R due also resolves round R-1, so a predict run and a score run are
# due together; launching both at once on a small machine slows the latency-critical one (two
# processes importing Dagster). Scoring yields to the live round's prediction for this long.
PREDICT_FIRST_SECONDS = 30
# While a round engine is alive it predicts live rounds; the sensor requests a run for a round
# only if the engine has not recorded it this long after the round (a fallback, never a rival:
# the engine and the asset share the partition lock and skip recorded inputs).
ENGINE_FALLBACK_SECONDS = 20


def _round_floor(now: dt.datetime, interval: int) -> dt.datetime:
    epoch = int(now.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % interval, tz=dt.timezone.utc)


def feed_mismatches(contract: CrunchContract, subjects: list[str], step_seconds: int) -> list[str]:
    """Why the feed cannot serve the contract's rounds (empty when it can): a round needs the
    record that closes at its time, and its truth the one that closes at round + horizon, so the
    feed must carry the round's subject and its step must divide the interval and the horizon
    (a 15 s schedule on one-minute candles would wait forever on the rounds between candles).
    >>> from coordinator_dagster.contracts import default_contract
    >>> feed_mismatches(default_contract(), ["BTC"], 15)
    ['scope eth-60s: subject ETH is not in FEED_SUBJECTS (BTC)']
    >>> feed_mismatches(default_contract(), ["BTC", "ETH"], 120)[0]
    'scope btc-60s: every 60 s, horizon 60 s: FEED_GRANULARITY of 120 s does not divide both (rounds need the record that closes at their time)'
    """
    problems = []
    for scheduled in contract.scheduled_predictions:
        if not scheduled.active:
            continue
        if scheduled.scope.subject not in subjects:
            problems.append(f"scope {scheduled.scope_key}: subject {scheduled.scope.subject} is not in FEED_SUBJECTS ({','.join(subjects)})")
        interval, horizon = scheduled.prediction_interval_seconds, scheduled.resolve_horizon_seconds
        if interval % step_seconds or horizon % step_seconds:
            problems.append(
                f"scope {scheduled.scope_key}: every {interval} s, horizon {horizon} s: FEED_GRANULARITY of {step_seconds} s "
                "does not divide both (rounds need the record that closes at their time)"
            )
    return problems


def newest_record(lake: Lake, subject: str, at: dt.datetime) -> dt.datetime | None:
    """Newest ts_event of `subject` in the hour partition holding `at` (None if none)."""
    frame = lake.read("feed_records", window_key(at)).filter(pl.col("subject") == subject)
    return frame["ts_event"].max() if frame.height else None


def newest_close(lake: Lake, subject: str, at: dt.datetime, step_seconds: int) -> tuple[dt.datetime, dt.timedelta] | None:
    """(close time, length) of the newest stored record of `subject` up to `at`: a candle, keyed
    by its open time, closes one granularity after its `ts_event`; a tick is its own close (length
    0). Reads the hours holding `at` and the step before it, where the candle closing at `at`
    opens (None if neither holds a record)."""
    frame = lake.read_window("feed_records", at - dt.timedelta(seconds=step_seconds), at + dt.timedelta(microseconds=1))
    frame = frame.filter((pl.col("subject") == subject) & (pl.col("ts_event") <= at))
    if not frame.height:
        return None
    newest = with_close_ts(frame).sort("ts_event").row(-1, named=True)
    return newest["close_ts"], newest["close_ts"] - newest["ts_event"]


def load_cursor(raw: str | None) -> dict[str, str]:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def recorded_round(lake: Lake, scope_key: str, round_ts: dt.datetime) -> bool:
    """Whether the lake holds predictions of `scope_key`'s round at `round_ts`."""
    frame = lake.read("predictions", window_key(round_ts))
    return not frame.filter((pl.col("round_ts") == round_ts) & (pl.col("scope_key") == scope_key)).is_empty()


def due_predict_rounds(
    contract: CrunchContract, lake: Lake, step_seconds: int, now: dt.datetime, cursor: dict[str, str], engine_live: bool = False
):
    """(requests by round, new cursor, reasons for waiting). With `engine_live`, a round the
    round engine recorded is passed over, and one it has not is requested only after
    ENGINE_FALLBACK_SECONDS."""
    requests: dict[dt.datetime, list[str]] = {}
    waiting = []
    new_cursor = dict(cursor)
    for scheduled in contract.scheduled_predictions:
        if not scheduled.active:
            continue
        due = _round_floor(now, scheduled.prediction_interval_seconds)
        if cursor.get(scheduled.scope_key, "") >= round_stamp(due):
            continue
        needed = due - dt.timedelta(seconds=step_seconds)  # open time of the candle closing at the round
        newest = newest_record(lake, scheduled.scope.subject, needed)
        if newest is None or newest < needed:
            waiting.append(f"{scheduled.scope_key}: round {round_stamp(due)} waits for {scheduled.scope.subject} data at {round_stamp(needed)}")
            continue
        if engine_live:
            if recorded_round(lake, scheduled.scope_key, due):
                new_cursor[scheduled.scope_key] = round_stamp(due)
                waiting.append(f"{scheduled.scope_key}: round {round_stamp(due)} recorded by the round engine")
                continue
            if (now - due).total_seconds() < ENGINE_FALLBACK_SECONDS:
                waiting.append(f"{scheduled.scope_key}: round {round_stamp(due)} is the round engine's")
                continue
        requests.setdefault(due, []).append(scheduled.scope_key)
        new_cursor[scheduled.scope_key] = round_stamp(due)
    return requests, new_cursor, waiting


def catch_up_hours(contract: CrunchContract, lake: Lake, cursor: dict[str, str], due_rounds: list[dt.datetime]) -> list[dt.datetime]:
    """Hours before the newest due round's hour that may hold unrecorded rounds, at most
    CATCH_UP_HOURS back: from the hour of the oldest scope whose previous round was not requested
    or has no predictions (the node was down, or that run failed).

    None on a first start (empty cursor): rounds from before the node existed are not late."""
    if not due_rounds:
        return []
    newest = max(due_rounds)
    newest_hour = newest.replace(minute=0, second=0, microsecond=0)
    gaps = []
    for scheduled in contract.scheduled_predictions:
        stamp = cursor.get(scheduled.scope_key)
        if not scheduled.active or not stamp:
            continue
        last = parse_round_stamp(stamp)
        if last >= newest_hour:
            continue  # its earlier rounds are in the live hour: the live run records them
        previous = _round_floor(newest, scheduled.prediction_interval_seconds) - dt.timedelta(seconds=scheduled.prediction_interval_seconds)
        recorded = lake.read("predictions", window_key(last)).filter((pl.col("round_ts") == last) & (pl.col("scope_key") == scheduled.scope_key))
        if last == previous and not recorded.is_empty():
            continue  # no gap: the round before this one was requested and recorded
        gaps.append(last)
    if not gaps:
        return []
    hour = max(min(gaps).replace(minute=0, second=0, microsecond=0), newest_hour - dt.timedelta(hours=CATCH_UP_HOURS))
    hours = []
    while hour < newest_hour:
        hours.append(hour)
        hour += dt.timedelta(hours=1)
    return hours


def live_round_awaiting_predictions(contract: CrunchContract, lake: Lake, step_seconds: int, now: dt.datetime) -> list[str]:
    """Scopes whose current round has its data but not yet its predictions (for at most
    PREDICT_FIRST_SECONDS after the round): the score sensor waits for them."""
    waiting = []
    for scheduled in contract.scheduled_predictions:
        if not scheduled.active:
            continue
        due = _round_floor(now, scheduled.prediction_interval_seconds)
        if (now - due).total_seconds() > PREDICT_FIRST_SECONDS:
            continue
        needed = due - dt.timedelta(seconds=step_seconds)
        newest = newest_record(lake, scheduled.scope.subject, needed)
        if newest is None or newest < needed:
            continue  # not due yet: nothing to wait for
        predicted = lake.read("predictions", window_key(due)).filter(
            (pl.col("round_ts") == due) & (pl.col("scope_key") == scheduled.scope_key)
        )
        if predicted.is_empty():
            waiting.append(f"{scheduled.scope_key}: round {round_stamp(due)}")
    return waiting


def failed_feed_checks(
    lake: Lake,
    subjects: list[str],
    start: dt.datetime,
    end: dt.datetime,
    step_seconds: int,
    config: FeedCheckConfig,
    rules: tuple[str, ...] = feed_checks.LAKE_RULES,
) -> list[str]:
    """Names of the blocking feed checks the stored records of [start, end) fail, with details.

    Re-evaluated on the lake rather than read from the instance's check history: a range run
    reports one evaluation for many hours, and the lake is what scoring will read, so a window
    becomes scorable exactly when its data is fixed (re-materialized), whoever fixed it.
    """
    lookback = dt.timedelta(seconds=step_seconds * config.frozen_records)
    records = lake.read_window("feed_records", start - lookback, end).filter(pl.col("subject").is_in(subjects))
    failures = feed_checks.lake_failures(records, subjects, start, end, step_seconds, config, rules)
    return [f"{o.name} ({o.metadata.get('examples') or o.description})" for o in failures]


def due_score_rounds(
    contract: CrunchContract,
    lake: Lake,
    step_seconds: int,
    now: dt.datetime,
    cursor: dict[str, str],
    config: FeedCheckConfig | None = None,
    engine: tuple[dict[str, str], bool] | None = None,
):
    """(requests by round, new cursor, reasons for waiting). With `engine` (the round engine
    scorer's cursor, and whether it is alive), a round it scored is passed over, and while it is
    alive newly due rounds are left to it: a round is never scored by both."""
    engine_cursor, engine_live = engine or ({}, False)
    config = config or FeedCheckConfig.for_step(step_seconds)
    subjects = sorted({p.scope.subject for p in contract.scheduled_predictions if p.active})
    requests: dict[dt.datetime, list[str]] = {}
    waiting = []
    new_cursor = dict(cursor)
    for scheduled in contract.scheduled_predictions:
        if not scheduled.active:
            continue
        horizon = dt.timedelta(seconds=scheduled.resolve_horizon_seconds)
        # The newest round whose resolvable time has passed; it is scored once the record holding
        # the price at T + H has landed: the candle that closes at T + H (it opened one step
        # earlier), or a tick at T + H. Waiting for the candle that opens at T + H would score
        # every round one candle late.
        due = _round_floor(now - horizon, scheduled.prediction_interval_seconds)
        if cursor.get(scheduled.scope_key, "") >= round_stamp(due):
            continue
        if _left_to_engine(scheduled.scope_key, due, engine_cursor, engine_live, new_cursor, waiting):
            continue
        resolvable = due + horizon
        newest = newest_close(lake, scheduled.scope.subject, resolvable, step_seconds)
        if newest is None or newest[0] < resolvable:
            waiting.append(f"{scheduled.scope_key}: round {round_stamp(due)} waits for truth data at {round_stamp(resolvable)}")
            # The rounds before it whose truth has landed need not wait with it: when the
            # horizon is one feed step (one-second rounds on one-second ticks), the newest due
            # round's truth is always still to land, and waiting for it would score nothing.
            earlier = _round_floor(newest[0] - horizon, scheduled.prediction_interval_seconds) if newest else None
            if earlier is None or cursor.get(scheduled.scope_key, "") >= round_stamp(earlier):
                continue
            if _left_to_engine(scheduled.scope_key, earlier, engine_cursor, engine_live, new_cursor, waiting):
                continue
            due, resolvable = earlier, earlier + horizon
        # A score run scores the whole window, every subject: any subject's failure holds it.
        # The checks cover the records up to the one holding the truth (open times before T + H
        # for candles, up to T + H for ticks).
        hour = due.replace(minute=0, second=0, microsecond=0)
        step = dt.timedelta(seconds=step_seconds)
        failed = failed_feed_checks(lake, subjects, hour, resolvable - newest[1] + step, step_seconds, config)
        if failed:
            waiting.append(f"{scheduled.scope_key}: round {round_stamp(due)} waits: feed check failed: {'; '.join(failed)}")
            continue
        requests.setdefault(due, []).append(scheduled.scope_key)
        new_cursor[scheduled.scope_key] = round_stamp(due)
    # Once an hour's grace period is over, score it one last time: predictions whose truth never
    # came are closed with a reason instead of staying PENDING (their rounds got no score run).
    longest = max((p.resolve_horizon_seconds for p in contract.scheduled_predictions), default=0)
    settled = now - dt.timedelta(seconds=longest + step_seconds + contract.ground_truth_grace_seconds)
    closable = settled.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    if cursor.get(CLOSED_KEY, "") < round_stamp(closable) and not _left_to_engine(
        CLOSED_KEY, closable, engine_cursor, engine_live, new_cursor, waiting
    ):
        # Not gaps: this pass exists to close, with a reason, predictions whose truth never came.
        no_gap_rules = tuple(r for r in feed_checks.LAKE_RULES if r != feed_checks.NO_GAPS)
        failed = failed_feed_checks(lake, subjects, closable, closable + dt.timedelta(hours=1), step_seconds, config, no_gap_rules)
        if failed:
            waiting.append(f"closing hour {round_stamp(closable)} waits: feed check failed: {'; '.join(failed)}")
        else:
            requests.setdefault(closable, []).append(CLOSED_KEY)
            new_cursor[CLOSED_KEY] = round_stamp(closable)
    return requests, new_cursor, waiting


def _left_to_engine(
    key: str, due: dt.datetime, engine_cursor: dict[str, str], engine_live: bool, new_cursor: dict[str, str], waiting: list[str]
) -> bool:
    """Whether the round engine's scorer has scored `due` (the cursor moves past it) or, alive,
    will: the score sensor then requests nothing for it."""
    if engine_cursor.get(key, "") >= round_stamp(due):
        new_cursor[key] = round_stamp(due)
        waiting.append(f"{key}: round {round_stamp(due)} scored by the round engine")
        return True
    if engine_live:
        waiting.append(f"{key}: round {round_stamp(due)} is the round engine's to score")
        return True
    return False


@dataclass(frozen=True)
class RunPlan:
    """A run to request: its deterministic key, its hour partition and its tags."""

    run_key: str
    partition_key: str
    tags: dict[str, str]


@dataclass(frozen=True)
class RoundPlan:
    """What a sensor tick should do: the runs to request (none: skip, saying `skip_reason`),
    the cursor to store, and what is still waiting (logged when runs are requested anyway)."""

    runs: list[RunPlan] = field(default_factory=list)
    cursor: str | None = None
    waiting: list[str] = field(default_factory=list)
    skip_reason: str = ""


def _runs(kind: str, requests: dict[dt.datetime, list[str]]) -> list[RunPlan]:
    return [
        RunPlan(
            run_key=f"{'close' if scopes == [CLOSED_KEY] else kind}:{round_stamp(round_ts)}",
            partition_key=window_key(round_ts),
            tags={LIVE_ROUND_TAG: round_stamp(round_ts), "coordinator/scopes": ",".join(scopes)},
        )
        for round_ts, scopes in sorted(requests.items())
    ]


def _skip(kind: str, waiting: list[str]) -> RoundPlan:
    return RoundPlan(skip_reason="; ".join(waiting) or f"no new round to {kind} yet")


def plan_predict_runs(
    contract: CrunchContract, lake: Lake, step_seconds: int, now: dt.datetime, cursor_json: str | None, engine_live: bool = False
) -> RoundPlan:
    """The predict runs of the rounds due now, then catch-up runs of earlier hours with gaps
    (with `engine_live`, only for rounds the round engine did not record in time)."""
    cursor = load_cursor(cursor_json)
    requests, new_cursor, waiting = due_predict_rounds(contract, lake, step_seconds, now, cursor, engine_live)
    if not requests:
        plan = _skip("predict", waiting)
        # The cursor still moves past rounds the engine recorded.
        return RoundPlan(cursor=json.dumps(new_cursor, sort_keys=True), skip_reason=plan.skip_reason) if new_cursor != cursor else plan
    # Earlier hours' unrecorded rounds become ABSENT ("round missed") in these runs: tagged with
    # the live round, the predictions asset records rounds older than it as missed. Requested
    # after the live round's run, which goes first.
    live = round_stamp(max(requests))
    catch_up = [
        RunPlan(
            run_key=f"predict-catch-up:{round_stamp(hour)}",
            partition_key=window_key(hour),
            tags={LIVE_ROUND_TAG: live, "coordinator/scopes": "catch-up"},
        )
        for hour in catch_up_hours(contract, lake, cursor, list(requests))
    ]
    return RoundPlan(_runs("predict", requests) + catch_up, json.dumps(new_cursor, sort_keys=True), waiting)


def plan_score_runs(
    contract: CrunchContract,
    lake: Lake,
    step_seconds: int,
    now: dt.datetime,
    cursor_json: str | None,
    config: FeedCheckConfig | None = None,
    predicting_live: bool = False,
    engine: tuple[dict[str, str], bool] | None = None,
) -> RoundPlan:
    """The score runs of the rounds whose truth has landed, and each hour's closing pass.

    While the node predicts live (`predicting_live`), scoring first waits (at most
    PREDICT_FIRST_SECONDS) for the current round's predictions. With `engine` (the round engine
    scorer's cursor and liveness, ROUND_ENGINE_SCORING), its rounds are passed over."""
    if predicting_live:
        first = live_round_awaiting_predictions(contract, lake, step_seconds, now)
        if first:
            return RoundPlan(skip_reason=f"scoring waits for the live round's predictions first: {'; '.join(first)}")
    cursor = load_cursor(cursor_json)
    requests, new_cursor, waiting = due_score_rounds(contract, lake, step_seconds, now, cursor, config, engine)
    if not requests:
        plan = _skip("score", waiting)
        # The cursor still moves past rounds the engine scored.
        return RoundPlan(cursor=json.dumps(new_cursor, sort_keys=True), skip_reason=plan.skip_reason) if new_cursor != cursor else plan
    return RoundPlan(_runs("score", requests), json.dumps(new_cursor, sort_keys=True), waiting)

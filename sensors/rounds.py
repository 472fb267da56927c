"""The predict and score sensors: they start work when the outside world is ready.

Both keep a cursor (JSON, per scope: the newest round already requested), use deterministic run
keys (`predict:<round>`, `score:<round>`) so a round is never requested twice, and say why when
they skip. They read the lake only to check that the feed data a round needs has landed.
"""

import datetime as dt
import json
from collections.abc import Callable

import dagster as dg
import polars as pl

from coordinator_dagster.feeds import checks as feed_checks
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.feeds.checks import FeedCheckConfig
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.partitions import window_key
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG
from resources import ClockResource, ContractResource, FeedSource, LakeResource
from sensors.jobs import predict_job, score_job

# The sensor daemon loops every ~5 s; asking for 5 s makes its "too soon" check skip every
# other loop (ticks 10 s apart, measured), so ask for less and let the loop set the pace.
SENSOR_INTERVAL_SECONDS = 1
CLOSED_KEY = "closed-hour"  # score cursor entry: the newest hour given its final scoring pass
# A live run records the missed rounds of its own hour; a gap across an hour boundary (node down,
# or a failed run at the end of an hour) is recorded by catch-up runs of the earlier hours, up to
# this many hours back.
CATCH_UP_HOURS = 24
# The candle that makes round R due also resolves round R-1, so a predict run and a score run are
# due together; launching both at once on a small machine slows the latency-critical one (two
# processes importing Dagster). Scoring yields to the live round's prediction for this long.
PREDICT_FIRST_SECONDS = 30


def _round_floor(now: dt.datetime, interval: int) -> dt.datetime:
    epoch = int(now.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % interval, tz=dt.timezone.utc)


def _stamp(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def newest_record(lake: Lake, subject: str, at: dt.datetime) -> dt.datetime | None:
    """Newest ts_event of `subject` in the hour partition holding `at` (None if none)."""
    frame = lake.read("feed_records", window_key(at)).filter(pl.col("subject") == subject)
    return frame["ts_event"].max() if frame.height else None


def _load_cursor(raw: str | None) -> dict[str, str]:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def due_predict_rounds(contract: CrunchContract, lake: Lake, step_seconds: int, now: dt.datetime, cursor: dict[str, str]):
    """(requests by round, new cursor, reasons for waiting)."""
    requests: dict[dt.datetime, list[str]] = {}
    waiting = []
    new_cursor = dict(cursor)
    for scheduled in contract.scheduled_predictions:
        if not scheduled.active:
            continue
        due = _round_floor(now, scheduled.prediction_interval_seconds)
        if cursor.get(scheduled.scope_key, "") >= _stamp(due):
            continue
        needed = due - dt.timedelta(seconds=step_seconds)  # open time of the candle closing at the round
        newest = newest_record(lake, scheduled.scope.subject, needed)
        if newest is None or newest < needed:
            waiting.append(f"{scheduled.scope_key}: round {_stamp(due)} waits for {scheduled.scope.subject} data at {_stamp(needed)}")
            continue
        requests.setdefault(due, []).append(scheduled.scope_key)
        new_cursor[scheduled.scope_key] = _stamp(due)
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
        last = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
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
            waiting.append(f"{scheduled.scope_key}: round {_stamp(due)}")
    return waiting


def _predicting_live(instance: dg.DagsterInstance) -> bool:
    """Has a sensor-requested predict run been created in the last ten minutes?"""
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=predict_job.name, created_after=since), limit=1)
    return bool(records)


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
    contract: CrunchContract, lake: Lake, step_seconds: int, now: dt.datetime, cursor: dict[str, str], config: FeedCheckConfig | None = None
):
    config = config or FeedCheckConfig()
    subjects = sorted({p.scope.subject for p in contract.scheduled_predictions if p.active})
    requests: dict[dt.datetime, list[str]] = {}
    waiting = []
    new_cursor = dict(cursor)
    for scheduled in contract.scheduled_predictions:
        if not scheduled.active:
            continue
        horizon = dt.timedelta(seconds=scheduled.resolve_horizon_seconds)
        # The newest round whose resolvable time's candle has closed.
        due = _round_floor(now - horizon - dt.timedelta(seconds=step_seconds), scheduled.prediction_interval_seconds)
        if cursor.get(scheduled.scope_key, "") >= _stamp(due):
            continue
        resolvable = due + horizon
        newest = newest_record(lake, scheduled.scope.subject, resolvable)
        if newest is None or newest < resolvable:
            waiting.append(f"{scheduled.scope_key}: round {_stamp(due)} waits for truth data at {_stamp(resolvable)}")
            continue
        # A score run scores the whole window, every subject: any subject's failure holds it.
        hour = due.replace(minute=0, second=0, microsecond=0)
        step = dt.timedelta(seconds=step_seconds)
        failed = failed_feed_checks(lake, subjects, hour, resolvable + step, step_seconds, config)
        if failed:
            waiting.append(f"{scheduled.scope_key}: round {_stamp(due)} waits: feed check failed: {'; '.join(failed)}")
            continue
        requests.setdefault(due, []).append(scheduled.scope_key)
        new_cursor[scheduled.scope_key] = _stamp(due)
    # Once an hour's grace period is over, score it one last time: predictions whose truth never
    # came are closed with a reason instead of staying PENDING (their rounds got no score run).
    longest = max((p.resolve_horizon_seconds for p in contract.scheduled_predictions), default=0)
    settled = now - dt.timedelta(seconds=longest + step_seconds + contract.ground_truth_grace_seconds)
    closable = settled.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    if cursor.get(CLOSED_KEY, "") < _stamp(closable):
        # Not gaps: this pass exists to close, with a reason, predictions whose truth never came.
        no_gap_rules = tuple(r for r in feed_checks.LAKE_RULES if r != feed_checks.NO_GAPS)
        failed = failed_feed_checks(lake, subjects, closable, closable + dt.timedelta(hours=1), step_seconds, config, no_gap_rules)
        if failed:
            waiting.append(f"closing hour {_stamp(closable)} waits: feed check failed: {'; '.join(failed)}")
        else:
            requests.setdefault(closable, []).append(CLOSED_KEY)
            new_cursor[CLOSED_KEY] = _stamp(closable)
    return requests, new_cursor, waiting


def _sensor_body(kind: str, find: Callable):
    def evaluate(context: dg.SensorEvaluationContext, lake: LakeResource, contract: ContractResource, feed: FeedSource, clock: ClockResource):
        crunch = contract.get()
        cursor = _load_cursor(context.cursor)
        if find is due_score_rounds and _predicting_live(context.instance):
            first = live_round_awaiting_predictions(crunch, lake.get(crunch), feed.step_seconds, clock.now())
            if first:
                return dg.SkipReason(f"scoring waits for the live round's predictions first: {'; '.join(first)}")
        extra = {"config": feed.check_settings()} if find is due_score_rounds else {}
        requests, new_cursor, waiting = find(crunch, lake.get(crunch), feed.step_seconds, clock.now(), cursor, **extra)
        if not requests:
            return dg.SkipReason("; ".join(waiting) or f"no new round to {kind} yet")
        if waiting:
            context.log.info("; ".join(waiting))
        run_requests = [
            dg.RunRequest(
                run_key=f"{'close' if scopes == [CLOSED_KEY] else kind}:{_stamp(round_ts)}",
                partition_key=window_key(round_ts),
                tags={LIVE_ROUND_TAG: _stamp(round_ts), "coordinator/scopes": ",".join(scopes)},
            )
            for round_ts, scopes in sorted(requests.items())
        ]
        if kind == "predict":
            # Earlier hours' unrecorded rounds become ABSENT ("round missed") in these runs: tagged
            # with the live round, the predictions asset records rounds older than it as missed.
            # Requested after the live round's run, which goes first.
            live = _stamp(max(requests))
            run_requests += [
                dg.RunRequest(
                    run_key=f"predict-catch-up:{_stamp(hour)}",
                    partition_key=window_key(hour),
                    tags={LIVE_ROUND_TAG: live, "coordinator/scopes": "catch-up"},
                )
                for hour in catch_up_hours(crunch, lake.get(crunch), cursor, list(requests))
            ]
        return dg.SensorResult(run_requests=_from_partitions_start(context, kind, run_requests), cursor=json.dumps(new_cursor, sort_keys=True))

    return evaluate


def _from_partitions_start(context: dg.SensorEvaluationContext, kind: str, run_requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    """The requests for hours from the partitions start on (PARTITIONS_START): an earlier hour holds
    nothing of this node (a first start's closing pass can reach back before its data)."""
    if context.repository_def is None:  # a bare test context: no definitions to ask
        return run_requests
    first = context.repository_def.get_job(f"{kind}_job").partitions_def.get_first_partition_key()
    kept = [r for r in run_requests if first is not None and r.partition_key >= first]
    if len(kept) < len(run_requests):
        context.log.info(f"not requested (before the partitions start {first}): {[r.partition_key for r in run_requests if r not in kept]}")
    return kept


@dg.sensor(job=predict_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def predict_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, contract: ContractResource, feed: FeedSource, clock: ClockResource):
    """Requests the predict run of each due round once the candle closing at the round has landed."""
    return _sensor_body("predict", due_predict_rounds)(context, lake, contract, feed, clock)


@dg.sensor(job=score_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def score_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, contract: ContractResource, feed: FeedSource, clock: ClockResource):
    """Requests scoring of a round's window once its horizon has passed and its truth has landed."""
    return _sensor_body("score", due_score_rounds)(context, lake, contract, feed, clock)


default_sensors = [predict_sensor, score_sensor]

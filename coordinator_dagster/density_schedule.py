"""Which density rounds are due to be asked or scored: the decisions of the density predict and
score sensors, as plain functions over the contract's prediction profiles, the clock and the lake.

Same shape as `round_schedule` (whose `RoundPlan`/`RunPlan` they return): a JSON cursor holds the
newest round time already requested, run keys are deterministic, so no round is requested twice,
and a restarted node catches up from its cursor.

- Predict: the newest trigger time of any profile, once the price closing at it has landed for
  every asset asked then, gets a live run (`density-predict:<time>`, tagged with the round); the
  earlier hours holding trigger times passed over since the cursor (node down) get one catch-up
  run each (`density-predict-catch-up:<hour>`), tagged with the same live round, so their rounds
  are recorded ABSENT as missed instead of asked late.
- Score: every round time whose truth (one horizon later) has landed for its assets, since the
  cursor, asks for its hour to be re-scored (`density-score:<hour>:<newest truth time>`); rounds
  of an hour without recorded density predictions are passed over (nothing to score).
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.density_pipeline import PREDICTIONS, active_profiles, read_prices
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG, parse_round_stamp, round_stamp
from coordinator_dagster.prediction_profiles import round_times
from coordinator_dagster.round_schedule import RoundPlan, RunPlan, load_cursor
from coordinator_dagster.windows import window_key

PREDICTED = "predicted"
SCORED = "scored"
# A node down for longer than this records only this much of the gap (as missed rounds).
CATCH_UP = dt.timedelta(hours=24)
_US = dt.timedelta(microseconds=1)
# Round times are whole seconds: [start, now + 1 s) holds every round up to and at `now`.
_SECOND = dt.timedelta(seconds=1)


def _since(cursor: dict[str, str], key: str, now: dt.datetime) -> dt.datetime:
    stamp = cursor.get(key)
    return max(parse_round_stamp(stamp) + _US, now - CATCH_UP) if stamp else now - CATCH_UP


def trigger_subjects(contract: CrunchContract, start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, set[str]]:
    """Trigger times in [start, end) → the assets asked then (all profiles)."""
    times: dict[dt.datetime, set[str]] = {}
    for profile in active_profiles(contract):
        for t in round_times(profile, start, end):
            times.setdefault(t, set()).update(profile.assets)
    return dict(sorted(times.items()))


def missing_prices(store: Lake, subjects: set[str], at: dt.datetime) -> list[str]:
    """The assets with no price recorded at or after `at` yet (read from `at`'s hour on)."""
    prices = read_prices(store, at, at + dt.timedelta(hours=1))
    have = set(prices.filter(pl.col("ts_event") >= at)["subject"].unique().to_list())
    return sorted(subjects - have)


def plan_density_predict_runs(contract: CrunchContract, store: Lake, now: dt.datetime, cursor_json: str | None) -> RoundPlan:
    cursor = load_cursor(cursor_json)
    due = trigger_subjects(contract, _since(cursor, PREDICTED, now), now + _SECOND)
    if not due:
        return RoundPlan(skip_reason="no new density round due yet")
    # Without a cursor (first start) there is nothing to catch up: only the newest round is due.
    times = list(due) if PREDICTED in cursor else [max(due)]
    live = times[-1]
    missing = missing_prices(store, due[live], live)
    if missing:
        return RoundPlan(skip_reason=f"density round {round_stamp(live)} waits for prices of {', '.join(missing)} at {round_stamp(live)}")
    stamp = round_stamp(live)
    runs = [RunPlan(f"density-predict:{stamp}", window_key(live), {LIVE_ROUND_TAG: stamp})]
    hours = sorted({window_key(t) for t in times[:-1]} - {window_key(live)})
    runs += [RunPlan(f"density-predict-catch-up:{hour}", hour, {LIVE_ROUND_TAG: stamp}) for hour in hours]
    return RoundPlan(runs, json.dumps({**cursor, PREDICTED: stamp}, sort_keys=True))


def resolution_times(contract: CrunchContract, start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, list[tuple[dt.datetime, set[str]]]]:
    """Truth times in [start, end) → the (round time, assets) resolved then."""
    out: dict[dt.datetime, list[tuple[dt.datetime, set[str]]]] = {}
    for profile in active_profiles(contract):
        horizon = dt.timedelta(seconds=profile.horizon_seconds)
        for t in round_times(profile, start - horizon, end - horizon):
            out.setdefault(t + horizon, []).append((t, set(profile.assets)))
    return dict(sorted(out.items()))


def plan_density_score_runs(contract: CrunchContract, store: Lake, now: dt.datetime, cursor_json: str | None) -> RoundPlan:
    cursor = load_cursor(cursor_json)
    due = resolution_times(contract, _since(cursor, SCORED, now), now + _SECOND)
    recorded: dict[str, bool] = {}
    hours: dict[str, dt.datetime] = {}
    newest, waiting = None, []
    for truth_at, rounds in due.items():
        # Rounds of hours without recorded predictions (before the node ran) have nothing to score.
        rounds = [(t, s) for t, s in rounds if recorded.setdefault(window_key(t), store.exists(PREDICTIONS, window_key(t)))]
        missing = missing_prices(store, set().union(*(s for _, s in rounds)), truth_at) if rounds else []
        if missing:  # later truths wait too: the cursor only moves over landed ones
            waiting.append(f"truth at {round_stamp(truth_at)} waits for prices of {', '.join(missing)}")
            break
        newest = truth_at
        for performed_at, _ in rounds:
            hours[window_key(performed_at)] = truth_at
    if newest is None:
        return RoundPlan(skip_reason="; ".join(waiting) or "no density round resolved yet")
    runs = [RunPlan(f"density-score:{hour}:{round_stamp(truth_at)}", hour, {LIVE_ROUND_TAG: round_stamp(truth_at)}) for hour, truth_at in sorted(hours.items())]
    new_cursor = json.dumps({**cursor, SCORED: round_stamp(newest)}, sort_keys=True)
    if not runs:
        return RoundPlan(cursor=new_cursor, skip_reason="the resolved density rounds have no recorded predictions")
    return RoundPlan(runs, new_cursor, waiting)

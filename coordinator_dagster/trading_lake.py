"""The trading pack's work over the lake (no Dagster): replaying hours of orders over the feed
into `trading_pnl`, `trading_fills` and `trading_state`, the snapshots of replayed hours, and the
leaderboard and checkpoint entries that rank a trading contract by net PnL. The assets in
`assets/trading.py`, the leaderboard and the checkpoints call these.

The portfolios are never a stored, mutable table: every hour's state is the replay of the
predictions and the feed from the hour before's state.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.lake.layout import window_start_of_file
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.scoring.trading import hourly, standings
from coordinator_dagster.windows import window_key, window_keys_between, window_start

HOUR = dt.timedelta(hours=1)


def saved_state(store: Lake, contract: CrunchContract, hour: dt.datetime) -> hourly.HourState | None:
    """The state at the end of `hour`, if that hour has been replayed."""
    frame = store.read("trading_state", window_key(hour))
    return hourly.load(frame["state"][0], contract.trading) if frame.height else None


def _saved_hours(store: Lake) -> list[dt.datetime]:
    return [h for h in (window_start_of_file(p) for p in store.files("trading_state")) if h is not None]


def state_before(store: Lake, contract: CrunchContract, moment: dt.datetime) -> hourly.HourState | None:
    """The state of the newest replayed hour that ended by `moment` (None: none had)."""
    ended = [h for h in _saved_hours(store) if h + HOUR <= moment]
    return saved_state(store, contract, max(ended)) if ended else None


def resume_point(store: Lake, contract: CrunchContract, start: dt.datetime, first_hour: dt.datetime) -> tuple[hourly.HourState, dt.datetime]:
    """Where a replay reaching `start` begins: after the newest replayed hour before `start`
    (from its state), or at `first_hour` from nothing. Hours in between are replayed too, so
    runs may arrive in any order and each still starts from the state before it."""
    saved = [h for h in _saved_hours(store) if first_hour <= h < start]
    if saved:
        newest = max(saved)
        state = saved_state(store, contract, newest)
        if state is not None:
            return state, newest + HOUR
    return hourly.HourState(), first_hour


def replay_hours(store: Lake, contract: CrunchContract, start: dt.datetime, end: dt.datetime, first_hour: dt.datetime) -> dict[str, Any]:
    """Replay every hour from the resume point to `end`, writing each hour's PnL, fills and state."""
    state, hour = resume_point(store, contract, start, first_hour)
    totals = {"hours": 0, "pnl_rows": 0, "fills": 0}
    while hour < end:
        key = window_key(hour)
        orders = store.read_window("predictions", hour, hour + HOUR)
        prices = hourly.prices_closing_in(store.read_window("feed_records", hour - HOUR, hour + HOUR), hour, hour + HOUR)
        result, state = hourly.replay_hour(orders, prices, contract.trading, state)
        store.write("trading_pnl", result.pnl, key)
        store.write("trading_fills", result.fills, key)
        row = {"period_start": [hour], "as_of": [state.replay.as_of], "state": [hourly.dump(state)]}
        store.write("trading_state", pl.DataFrame(row), key)
        totals = {"hours": totals["hours"] + 1, "pnl_rows": totals["pnl_rows"] + result.pnl.height, "fills": totals["fills"] + result.fills.height}
        hour += HOUR
    return totals


def snapshot_window(store: Lake, contract: CrunchContract, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Write and return the trading snapshots of the hours in [start, end): each model's standing
    at every replayed hour's end (hourly.snapshot_rows); hours not replayed yet get none."""
    keys = window_keys_between(start, end)
    frames = []
    for key in keys:
        hour = window_start(key)
        state = saved_state(store, contract, hour)
        if state is not None:
            orders = store.read_window("predictions", hour, hour + HOUR)
            frames.append(hourly.snapshot_rows(state, orders, store.read("trading_fills", key), hour, contract.scoring_version))
    out = pl.concat(frames) if frames else store.read_paths("snapshots", [])
    store.write_windows("snapshots", out, "period_start", keys)
    return out


def trading_leaderboard(store: Lake, contract: CrunchContract, models: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """The leaderboard by net PnL at the newest replayed hour (standings.leaderboard)."""
    newest = store.newest_window("trading_state")
    state = saved_state(store, contract, newest) if newest is not None else None
    windows = contract.aggregation.windows
    if state is None:
        return standings.leaderboard(hourly.HourState(), {name: None for name in windows}, models, now)
    starts = {name: state_before(store, contract, newest + HOUR - hours * HOUR) for name, hours in windows.items()}
    return standings.leaderboard(state, starts, models, min(newest + HOUR, now))


def trading_checkpoint_entries(store: Lake, contract: CrunchContract, models: pl.DataFrame, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """A period's entries ranked by the net PnL made in it (standings.checkpoint_entries)."""
    return standings.checkpoint_entries(state_before(store, contract, start), state_before(store, contract, end), models)

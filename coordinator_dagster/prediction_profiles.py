"""Prediction profiles: how a density competition asks for forecasts, and the rounds and warm-up
history that follow from them.

A profile (Synth's "24h" and "1h") names the assets, the horizon, the step resolutions asked for
in every round, how often a round is triggered and how long models have to answer. Each profile
becomes rounds: one per asset at every multiple of its interval (epoch-aligned, so the schedule
is the same on every node and after a restart), each asking for `horizon // step` densities per
step. A model that is new or restarted first receives the history the profiles need (Synth: 30
days of one-minute prices, in one tick); afterwards each tick carries only the prices since the
model's previous one. Plain functions over polars frames; what runs the models is
`coordinator_dagster.models.density_rounds`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from coordinator_dagster.domain_types import PredictionScope, ScheduledPrediction

UTC = dt.timezone.utc


class PredictionProfile(BaseModel):
    """Assets × horizon × steps × trigger cadence × answer deadline (+ the history models need)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
    assets: list[str] = Field(min_length=1)
    horizon_seconds: int = Field(gt=0)
    steps: list[int] = Field(min_length=1)
    interval_seconds: int = Field(gt=0, description="a round is triggered at every multiple of this, per asset")
    deadline_seconds: float = Field(default=40.0, gt=0, description="time a model has to answer all of a round's steps")
    history_days: int = Field(default=30, ge=0, description="history sent on a model's first tick")
    history_resolution_seconds: int = Field(default=60, gt=0)
    active: bool = True

    @model_validator(mode="after")
    def _steps(self) -> "PredictionProfile":
        bad = [s for s in self.steps if s <= 0 or s > self.horizon_seconds or self.horizon_seconds % s]
        if bad:
            raise ValueError(f"profile {self.name}: steps {bad} must be positive divisors of the horizon {self.horizon_seconds}")
        if len(set(self.assets)) != len(self.assets):
            raise ValueError(f"profile {self.name}: assets repeat: {self.assets}")
        return self

    def densities_per_round(self) -> int:
        return sum(self.horizon_seconds // s for s in self.steps)

    def scheduled_predictions(self) -> list[ScheduledPrediction]:
        """The profile as the node's per-scope schedule (one scope per asset, finest step)."""
        return [
            ScheduledPrediction(
                scope_key=f"{self.name}-{asset.lower()}",
                scope=PredictionScope(subject=asset, step_seconds=min(self.steps), horizon_seconds=self.horizon_seconds),
                prediction_interval_seconds=self.interval_seconds,
                resolve_horizon_seconds=self.horizon_seconds,
                active=self.active,
            )
            for asset in self.assets
        ]


SYNTH_24H_ASSETS = ["BTC", "SOL", "ETH", "XAUT", "SP500", "NVDAX", "TSLAX", "AAPLX", "GOOGLX", "XRP", "HYPE", "WTIOIL", "SPCX"]
SYNTH_1H_ASSETS = ["BTC", "SOL", "ETH", "XRP", "HYPE"]


def synth_profiles(assets: Sequence[str] | None = None) -> list[PredictionProfile]:
    """Synth's two profiles (crunch-synth 0.15.0's FORECAST_PROFILES and the public rules), limited
    to `assets` when given: 24 h hourly with 5 min, 1 h, 6 h and 24 h steps; 1 h every 12 minutes
    with 1, 5, 15, 30 and 60 min steps; 40 s to answer; 30 days of one-minute history."""
    keep = (lambda names: [a for a in names if a in assets]) if assets is not None else list
    profiles = [
        PredictionProfile(name="24h", assets=keep(SYNTH_24H_ASSETS), horizon_seconds=86400, steps=[300, 3600, 21600, 86400], interval_seconds=3600),
        PredictionProfile(name="1h", assets=keep(SYNTH_1H_ASSETS), horizon_seconds=3600, steps=[60, 300, 900, 1800, 3600], interval_seconds=720),
    ]
    return [p for p in profiles if p.assets]


ROUNDS_SCHEMA = pl.Schema(
    {
        "profile": pl.String,
        "subject": pl.String,
        "performed_at": pl.Datetime("us", "UTC"),
        "resolvable_at": pl.Datetime("us", "UTC"),
        "horizon_seconds": pl.Int64,
        "steps": pl.List(pl.Int64),
        "deadline_seconds": pl.Float64,
    }
)


def round_times(profile: PredictionProfile, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Trigger times of a profile in [start, end): the multiples of its interval since the epoch."""
    first = -(-int(start.timestamp()) // profile.interval_seconds) * profile.interval_seconds
    return [dt.datetime.fromtimestamp(t, tz=UTC) for t in range(first, int(end.timestamp()), profile.interval_seconds) if t >= start.timestamp()]


def density_rounds(profiles: Iterable[PredictionProfile], start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """One row per round (profile × asset × trigger time) in [start, end), by time then profile order."""
    rows = [
        (p.name, asset, t, t + dt.timedelta(seconds=p.horizon_seconds), p.horizon_seconds, list(p.steps), p.deadline_seconds)
        for p in profiles if p.active
        for t in round_times(p, start, end)
        for asset in p.assets
    ]
    return pl.DataFrame(rows, schema=ROUNDS_SCHEMA, orient="row").sort("performed_at", maintain_order=True)


def warm_up_seconds(profiles: Iterable[PredictionProfile]) -> int:
    """History a new or restarted model needs on its first tick: the longest of the profiles'."""
    return max((p.history_days * 86400 for p in profiles if p.active), default=0)


def tick_payload(prices: pl.DataFrame, assets: Iterable[str], now: dt.datetime, since: dt.datetime | None, history_seconds: int, resolution_seconds: int = 60) -> dict[str, list[tuple[int, float]]]:
    """What one model's tick carries: {asset: [(unix seconds, price), ...]} for the prices in
    (since, now], or, for a model without a previous tick (`since` None), the warm-up history
    [now − history_seconds, now] thinned to one price per `resolution_seconds` (the first of each slot, so one-minute
    history falls on whole minutes).

    `prices`: columns subject, ts_event (UTC datetime), price."""
    lower = now - dt.timedelta(seconds=history_seconds) if since is None else since
    window = prices.filter(pl.col("subject").is_in(list(assets)) & (pl.col("ts_event") <= now))
    window = window.filter(pl.col("ts_event") >= lower) if since is None else window.filter(pl.col("ts_event") > lower)
    if since is None and resolution_seconds > 1:
        window = window.sort("ts_event").group_by("subject", pl.col("ts_event").dt.truncate(f"{resolution_seconds}s").alias("slot"), maintain_order=True).first()
    window = window.sort("subject", "ts_event")
    payload: dict[str, list[tuple[int, float]]] = {}
    for (subject,), part in window.group_by("subject", maintain_order=True):
        payload[subject] = list(zip(part["ts_event"].dt.epoch("s").to_list(), part["price"].to_list()))
    return payload

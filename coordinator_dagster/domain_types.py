"""The pydantic shapes a competition is made of: inputs, outputs, scores, scopes, emission.

Only data shapes live here (no behaviour beyond validation); the contract that ties them together
is `coordinator_dagster.contracts`. Names follow the reference engine so that operators'
existing contract modules keep working.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

# frac64: the on-chain reward unit; 1,000,000,000 is 100 %.
FRAC64_MULTIPLIER = 1_000_000_000


class Candle(BaseModel):
    """One record of a round's window: a candle's OHLCV, or a tick's price as `close` (a field
    the feed does not record is None)."""

    ts: dt.datetime
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float
    volume: float | None = None


class RawInput(BaseModel):
    """What a model receives each round: the recent window of one subject's feed."""

    model_config = ConfigDict(extra="allow")

    subject: str
    round_ts: dt.datetime
    step_seconds: int
    horizon_seconds: int
    candles: list[Candle]


class InferenceOutput(BaseModel):
    """What a model must answer: a finite number `value`; extra keys are kept with the prediction.

    Parsed strictly: `{"value": "0.3"}` or `{"value": true}` is refused (the prediction FAILS with
    the reason) instead of being coerced to 0.3 or 1.0, since a model that answers text or a flag
    is broken and its score would be a guess. Any real number passes (numpy scalars included).
    Subclasses inherit the strictness; a contract opts into pydantic's lax parsing with an output
    type whose config says `strict=False`, such as `LaxInferenceOutput`.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    value: float

    @field_validator("value", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        if not cls.model_config.get("strict"):
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise PydanticCustomError(
                "number_required",
                "a number is required, got {kind} {shown} (outputs are parsed strictly)",
                {"kind": type(value).__name__, "shown": repr(value)[:80]},
            )
        return float(value)

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("value must be a finite number (NaN and infinity are refused)")
        return value


class LaxInferenceOutput(InferenceOutput):
    """`InferenceOutput` with pydantic's lax parsing: numeric strings and booleans are coerced
    (`"0.3"` → 0.3, `true` → 1.0), as the reference engine accepts them."""

    model_config = ConfigDict(extra="allow", strict=False)


class ScoreResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    value: float = 0.0
    success: bool = True
    failed_reason: str | None = None


class PredictionScope(BaseModel):
    subject: str = "BTC"
    step_seconds: int = Field(default=60, gt=0)
    horizon_seconds: int = Field(default=60, gt=0)


class AggregationWindow(BaseModel):
    """One leaderboard window given as an object (the reference engine's shape); kept as its hours."""

    hours: int = Field(ge=1)


class Aggregation(BaseModel):
    """Leaderboard windows (name → hours), the score field they average, and the ranking.

    A window may be given as hours or as an `AggregationWindow(hours=...)`.
    """

    windows: dict[str, int] = Field(
        default_factory=lambda: {"score_recent": 24, "score_steady": 72, "score_anchor": 168}
    )
    value_field: str = "value"
    ranking_key: str = "score_recent"
    ranking_direction: str = "desc"

    @field_validator("windows", mode="before")
    @classmethod
    def _window_objects(cls, windows: Any) -> Any:
        if isinstance(windows, dict):
            return {name: getattr(w, "hours", w) for name, w in windows.items()}
        return windows

    @model_validator(mode="after")
    def _check(self) -> "Aggregation":
        if not self.windows:
            raise ValueError("aggregation.windows needs at least one window")
        if any(hours <= 0 for hours in self.windows.values()):
            raise ValueError("aggregation window lengths must be positive hours")
        if self.ranking_direction not in ("asc", "desc"):
            raise ValueError("ranking_direction must be 'asc' or 'desc'")
        return self


class ScheduledPrediction(BaseModel):
    scope_key: str
    scope: PredictionScope
    prediction_interval_seconds: int = Field(default=60, gt=0)
    resolve_horizon_seconds: int = Field(default=60, gt=0)
    active: bool = True


class MetricFilter(BaseModel):
    metric: str
    min_value: float


class EnsembleConfig(BaseModel):
    """A virtual meta-model `__ensemble_<name>__` combining the real models' predictions.

    Members are chosen, and weighted, from the `lookback_hours` of history before each window
    (never from the window itself): `min_metric` drops models whose mean metric is below the
    threshold, `top_n` keeps the best by the contract's ranking. `inverse_variance` weights a
    member by 1 / variance of its scores; `equal_weight` weights all members the same.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    strategy: Literal["inverse_variance", "equal_weight"] = "inverse_variance"
    top_n: int | None = Field(default=None, gt=0)
    min_metric: MetricFilter | None = None
    lookback_hours: int = Field(default=24, gt=0)

    @property
    def model_id(self) -> str:
        return f"__ensemble_{self.name}__"


class CruncherReward(BaseModel):
    cruncher_index: int
    reward_pct: int = Field(ge=0, le=FRAC64_MULTIPLIER)


class ProviderReward(BaseModel):
    provider: str
    reward_pct: int = Field(ge=0, le=FRAC64_MULTIPLIER)


class EmissionCheckpoint(BaseModel):
    """The reward split submitted on-chain; every non-empty list sums to FRAC64_MULTIPLIER.

    A rule that leaves part of the crunchers' pool unpaid (the production top-K rule's unfilled
    slots) says so in `retained_pct`: then the cruncher rewards plus the retained share make
    exactly FRAC64_MULTIPLIER. The reference's rules retain nothing (0).
    """

    crunch: str
    cruncher_rewards: list[CruncherReward]
    compute_provider_rewards: list[ProviderReward] = Field(default_factory=list)
    data_provider_rewards: list[ProviderReward] = Field(default_factory=list)
    retained_pct: int = Field(default=0, ge=0, le=FRAC64_MULTIPLIER, description="crunchers' pool share left unpaid (frac64)")

    @model_validator(mode="after")
    def _sums(self) -> "EmissionCheckpoint":
        crunchers = sum(r.reward_pct for r in self.cruncher_rewards)
        if (self.cruncher_rewards or self.retained_pct) and crunchers + self.retained_pct != FRAC64_MULTIPLIER:
            raise ValueError(f"cruncher_rewards plus retained_pct must sum to exactly {FRAC64_MULTIPLIER}")
        for name in ("compute_provider_rewards", "data_provider_rewards"):
            rewards = getattr(self, name)
            if rewards and sum(r.reward_pct for r in rewards) != FRAC64_MULTIPLIER:
                raise ValueError(f"{name} must sum to exactly {FRAC64_MULTIPLIER}")
        return self

"""The competition contract: `CrunchContract`, its defaults, and how an operator replaces it.

A contract is data (types, scopes, windows, metrics, addresses) plus four callables. Callables may
be given as objects or dotted paths; both are resolved and their signatures checked when the
contract is built, so a bad path or a wrong signature stops the node at start-up, not mid-round.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from coordinator_dagster.scoring.callables import resolve_dotted
from coordinator_dagster.scoring.trading.config import TradingConfig
from coordinator_dagster.domain_types import (
    FRAC64_MULTIPLIER,
    Aggregation,
    Candle,
    CruncherReward,
    EmissionCheckpoint,
    EnsembleConfig,
    InferenceOutput,
    LaxInferenceOutput,
    PredictionScope,
    ProviderReward,
    RawInput,
    ScheduledPrediction,
    ScoreResult,
)
from coordinator_dagster.prediction_profiles import PredictionProfile
from coordinator_dagster.scoring.density.spec import DensityForecast
from coordinator_dagster.scoring.emission import default_build_emission
from coordinator_dagster.scoring.metrics import ENSEMBLE_METRICS, METRICS
from coordinator_dagster.scoring.scores import default_resolve_ground_truth, default_scoring_function
from coordinator_dagster.scoring.snapshots import default_aggregate_snapshot
from coordinator_dagster.scoring.top_k_rewards import TopKPerGroup

__all__ = [
    "FRAC64_MULTIPLIER",
    "Aggregation",
    "Candle",
    "ContractError",
    "CrunchContract",
    "CruncherReward",
    "DensityForecast",
    "EmissionCheckpoint",
    "EnsembleConfig",
    "InferenceOutput",
    "LaxInferenceOutput",
    "PredictionProfile",
    "PredictionScope",
    "ProviderReward",
    "RawInput",
    "ScheduledPrediction",
    "ScoreResult",
    "TopKPerGroup",
    "default_contract",
    "load_contract",
]

CONFIG_ENV_VAR = "CRUNCH_CONFIG_MODULE"
# The reference engine's way to name the scoring function; a contract that names one wins.
SCORING_ENV_VAR = "SCORING_FUNCTION"
# The reference engine's way to name the input builder; a contract that names one wins.
INPUT_BUILDER_ENV_VAR = "INFERENCE_INPUT_BUILDER"


class ContractError(ValueError):
    """The configured contract cannot be loaded or is inconsistent."""


# Each callable must accept these positional arguments (extra optional parameters are fine).
_CALLABLE_ARITY = {
    "resolve_ground_truth": ("records", "input"),
    "scoring_function": ("prediction", "ground_truth"),
    "aggregate_snapshot": ("score_results",),
    "build_emission": ("ranked_entries", "crunch_pubkey"),
    "input_builder": ("records",),
}


def checked_callable(name: str, value: Any) -> Callable[..., Any]:
    """`value` (a callable or a dotted path to one) once it accepts the arguments `name` is called
    with; ValueError saying what is wrong otherwise."""
    if isinstance(value, str):
        try:
            value = resolve_dotted(value)
        except ImportError as exc:
            raise ValueError(f"{name}: {exc}") from exc
    if not callable(value):
        raise ValueError(f"{name}: {value!r} is not callable")
    required = _CALLABLE_ARITY[name]
    try:
        inspect.signature(value).bind(*required)
    except TypeError as exc:
        raise ValueError(
            f"{name}: {getattr(value, '__qualname__', value)!r} must accept ({', '.join(required)}): {exc}"
        ) from exc
    except ValueError:
        pass  # builtins without an inspectable signature: trust them
    return value


def _default_schedule() -> list[ScheduledPrediction]:
    return [
        ScheduledPrediction(
            scope_key="btc-60s",
            scope=PredictionScope(subject="BTC", step_seconds=60, horizon_seconds=60),
            prediction_interval_seconds=60,
            resolve_horizon_seconds=60,
        )
    ]


class CrunchContract(BaseModel):
    """Everything that defines one competition (field names follow the reference engine)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    raw_input_type: type[BaseModel] = RawInput
    output_type: type[BaseModel] = InferenceOutput
    score_type: type[ScoreResult] = ScoreResult
    scope: PredictionScope = Field(default_factory=PredictionScope)
    aggregation: Aggregation = Field(default_factory=Aggregation)
    scheduled_predictions: list[ScheduledPrediction] = Field(default_factory=_default_schedule)
    metrics: list[str] = Field(
        default_factory=lambda: ["ic", "ic_sharpe", "hit_rate", "max_drawdown", "model_correlation"]
    )
    ensembles: list[EnsembleConfig] = Field(default_factory=list)
    crunch_pubkey: str = ""
    compute_provider: str | None = None
    data_provider: str | None = None

    # Here-only settings (the reference engine has no equivalent or hard-codes them).
    checkpoint_period: Literal["daily", "weekly"] = "weekly"
    input_window_size: int = Field(
        default=60, gt=0,
        description="the input window in feed steps: it spans this many × the feed's granularity "
        "(input_window_seconds, when given, sets the span instead)",
    )
    input_window_seconds: int | None = Field(
        default=None, gt=0,
        description="the input window's time span: models get the records that closed in the last "
        "this-many seconds before the round (fewer where the feed has a gap)",
    )
    max_ground_truth_staleness_fraction: float = Field(
        default=0.2,
        ge=0,
        description="the truth waits while its newest record closes more than this × horizon before "
        "round + horizon; 0 turns the guard off (reference meaning)",
    )
    scoring_version: str = Field(
        default="v1",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="recorded in every score and snapshot; a new version re-scores into its own folders",
    )
    ground_truth_grace_seconds: int = Field(
        default=3600, gt=0, description="after this long past its resolvable time an unresolved prediction is closed"
    )
    late_cutoff_seconds: int | None = Field(
        default=None,
        gt=0,
        description="a live round the node asks more than this after its round time (the engine was behind, the "
        "node restarted) is recorded LATE, never rewarded; None: one prediction interval",
    )
    # Density competitions (Synth): assets × horizon × steps × cadence × deadline, each becoming
    # rounds (coordinator_dagster.prediction_profiles); empty for point-prediction competitions.
    prediction_profiles: list[PredictionProfile] = Field(default_factory=list)
    # Trading competitions: answers are orders replayed over the feed into simulated portfolios
    # (coordinator_dagster.scoring.trading), ranked by net PnL; None for scored competitions.
    trading: TradingConfig | None = None

    resolve_ground_truth: Callable[..., Any] = default_resolve_ground_truth
    scoring_function: Callable[..., Any] = default_scoring_function
    aggregate_snapshot: Callable[..., Any] = default_aggregate_snapshot
    build_emission: Callable[..., Any] = default_build_emission
    # (window records: a polars frame of feed_records) → the model input; None: our RawInput shape.
    input_builder: Callable[..., Any] | None = None

    @field_validator(*_CALLABLE_ARITY, mode="before")
    @classmethod
    def _resolve_callable(cls, value: Any, info: Any) -> Any:
        if value is None and info.field_name == "input_builder":
            return None
        return checked_callable(info.field_name, value)

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; registered: {sorted(METRICS)}")
        return names

    @model_validator(mode="after")
    def _consistent(self) -> "CrunchContract":
        names = [e.name for e in self.ensembles]
        if len(names) != len(set(names)):
            raise ValueError(f"ensemble names must be unique, got {names}")
        for ensemble in self.ensembles:
            if ensemble.min_metric and ensemble.min_metric.metric not in self.metrics and ensemble.min_metric.metric != "value":
                raise ValueError(f"ensemble {ensemble.name}: min_metric {ensemble.min_metric.metric!r} is not a configured metric")
        if any(m in ENSEMBLE_METRICS for m in self.metrics) and not self.ensembles:
            raise ValueError(f"metrics {[m for m in self.metrics if m in ENSEMBLE_METRICS]} need at least one ensemble")
        profile_names = [p.name for p in self.prediction_profiles]
        if len(profile_names) != len(set(profile_names)):
            raise ValueError(f"prediction_profiles names must be unique, got {profile_names}")
        keys = [p.scope_key for p in self.scheduled_predictions]
        if len(keys) != len(set(keys)):
            raise ValueError(f"scheduled_predictions scope_key values must be unique, got {keys}")
        key = self.aggregation.ranking_key
        if key not in self.aggregation.windows and key not in self.metrics and key != self.aggregation.value_field:
            raise ValueError(
                f"aggregation.ranking_key {key!r} is neither a window {list(self.aggregation.windows)}, "
                f"a configured metric {self.metrics}, nor the value field"
            )
        return self

    def input_window_span(self, step_seconds: int) -> int:
        """The input window in seconds, for a feed of `step_seconds` granularity."""
        return self.input_window_seconds or self.input_window_size * step_seconds

    @property
    def builder_output_type(self) -> type[BaseModel] | None:
        """The type an input builder's output is validated through (None: any mapping)."""
        return None if self.raw_input_type is RawInput else self.raw_input_type

    @property
    def subjects(self) -> list[str]:
        return sorted({p.scope.subject for p in self.scheduled_predictions if p.active})


def default_contract() -> CrunchContract:
    """The embedded example competition: one-minute BTC and ETH direction rounds."""
    return CrunchContract(
        scheduled_predictions=[
            ScheduledPrediction(
                scope_key=f"{subject.lower()}-60s",
                scope=PredictionScope(subject=subject, step_seconds=60, horizon_seconds=60),
                prediction_interval_seconds=60,
                resolve_horizon_seconds=60,
            )
            for subject in ("BTC", "ETH")
        ],
        crunch_pubkey="CoordinatorExampLeCrunchPubkey11111111111111",
    )


def load_contract(spec: str | None = None) -> CrunchContract:
    """The contract named by `spec` or `$CRUNCH_CONFIG_MODULE` (`module:attr`), else the default.

    `attr` may be a `CrunchContract`, or a class or function returning one (the reference's
    `CrunchConfig` class). `$SCORING_FUNCTION` (`module:function`) replaces the default scoring
    function of a contract that does not choose its own; `$INFERENCE_INPUT_BUILDER` likewise gives
    the input builder of a contract without one.
    """
    spec = spec if spec is not None else os.environ.get(CONFIG_ENV_VAR, "")
    return _check_input_type(_input_builder_from_environment(_scoring_from_environment(_load(spec))))


def _input_builder_from_environment(contract: CrunchContract) -> CrunchContract:
    spec = os.environ.get(INPUT_BUILDER_ENV_VAR, "").strip()
    if not spec or contract.input_builder is not None:
        return contract
    try:
        builder = checked_callable("input_builder", spec)
    except ValueError as exc:
        raise ContractError(f"{INPUT_BUILDER_ENV_VAR}={spec!r}: {exc}") from exc
    # A copy, not a rebuild: the contract's other fields were validated (and wrapped) already.
    return contract.model_copy(update={"input_builder": builder})


def _check_input_type(contract: CrunchContract) -> CrunchContract:
    # Checked once the environment had its say: the builder may come from INFERENCE_INPUT_BUILDER.
    if contract.raw_input_type is not RawInput and contract.input_builder is None:
        raise ContractError(
            f"raw_input_type {contract.raw_input_type.__name__} needs an input_builder (or {INPUT_BUILDER_ENV_VAR}) "
            "that builds it from the window's records; without one models are handed RawInput"
        )
    return contract


def _scoring_from_environment(contract: CrunchContract) -> CrunchContract:
    scoring = os.environ.get(SCORING_ENV_VAR, "").strip()
    if not scoring or contract.scoring_function is not default_scoring_function:
        return contract
    try:
        return type(contract)(**{**dict(contract), "scoring_function": scoring})
    except ValueError as exc:
        raise ContractError(f"{SCORING_ENV_VAR}={scoring!r}: {exc}") from exc


def _load(spec: str) -> CrunchContract:
    if not spec.strip():
        return default_contract()
    try:
        target = resolve_dotted(spec.strip())
    except ImportError as exc:
        raise ContractError(f"{CONFIG_ENV_VAR}={spec!r}: {exc}") from exc
    if callable(target) and not isinstance(target, CrunchContract):
        try:
            target = target()
        except Exception as exc:
            raise ContractError(f"{CONFIG_ENV_VAR}={spec!r}: building the contract raised {exc!r}") from exc
    if not isinstance(target, CrunchContract):
        raise ContractError(f"{CONFIG_ENV_VAR}={spec!r} is a {type(target).__name__}, not a CrunchContract")
    return target

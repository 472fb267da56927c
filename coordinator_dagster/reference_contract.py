"""The reference engine's contract shape (`CrunchConfig`) on top of ours (`CrunchContract`).

An operator of the reference engine defines a competition by subclassing its `CrunchConfig`;
`crunch_node.crunch_config` (a compatibility import path in this repository) hands them the class
below, so their module loads unchanged. Each of the reference's fields is either honoured (mapped
onto ours) or refused at start-up with an error naming the field; a field neither engine knows is
an error too, so nothing an operator wrote is ever silently dropped.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.domain_types import PredictionScope
from coordinator_dagster.domain_types import ScheduledPrediction as _OurScheduledPrediction
from coordinator_dagster.scoring.scores import default_scoring_function

log = logging.getLogger(__name__)

# The reference's default for a scope's step when a schedule gives only a subject.
REFERENCE_STEP_SECONDS = 15
# The one model call the reference's realtime service makes, and the one we make.
DEFAULT_CALL_ARGS = ("subject", "resolve_horizon_seconds", "step_seconds")


# (prediction, ground_truth) → score, both handed as typed models. A plain callable type, not a
# Protocol, because operators annotate contract fields with it and pydantic validates those.
ScoringFunction = Callable[..., Any]


class Meta(BaseModel):
    model_config = ConfigDict(extra="allow")


class GroundTruth(BaseModel):
    """The truth's default type: whatever `resolve_ground_truth` returned, any fields."""

    model_config = ConfigDict(extra="allow")


class PerformanceConfig(BaseModel):
    """Accepted for compatibility: run timings are in Dagster's run view here, not an endpoint."""

    model_config = ConfigDict(extra="allow")

    timing_endpoint_enabled: bool = True


class CallMethodArg(BaseModel):
    name: str
    type: str = "STRING"


class CallMethodConfig(BaseModel):
    method: str = "predict"
    args: list[CallMethodArg] = Field(default_factory=lambda: [CallMethodArg(name=n) for n in DEFAULT_CALL_ARGS])


class ScheduledPrediction(_OurScheduledPrediction):
    """The reference's schedule entry: `scope` may be a dict holding only a subject."""

    order: int = 0
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _scope_from_schedule(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("scope"), dict):
            scope = dict(data["scope"])
            scope.setdefault("step_seconds", REFERENCE_STEP_SECONDS)
            scope.setdefault("horizon_seconds", data.get("resolve_horizon_seconds", 60))
            unknown = set(scope) - set(PredictionScope.model_fields)
            if unknown:
                raise ValueError(f"scope keys {sorted(unknown)} are not supported (only subject, step_seconds)")
            data = {**data, "scope": scope}
        return data


class RealtimePredictService:
    """Marker: the reference's realtime prediction loop, which is what this node's rounds are."""


class TournamentPredictService:
    """Marker: the reference's tournament service, rounds on uploaded samples (this node's
    `/tournament` routes and round assets); its models are asked `predict(features)`."""


TOURNAMENT_CALL_ARGS = ("features",)


class RealtimeServiceConfig(BaseModel):
    """The reference's feed/predict hooks; refused by `CrunchConfig` (no such hooks here)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pre_feed_update_hook: Callable[..., Any] | None = None
    post_predict_hook: Callable[..., Any] | None = None


# The reference's fields with no counterpart here: each must stay at the reference's default.
_REFUSED_UNLESS_DEFAULT = {
    "meta_type": "no per-prediction meta type here",
    "input_type": "models receive the feed's candles or ticks; give raw_input_type for our RawInput shape",
    "compute_metrics": "metrics are chosen by name from the registry (the `metrics` field)",
    "build_prediction_sink": "predictions are written to the lake; there is no pluggable sink",
    "build_score_snapshots": "snapshots are built by aggregate_snapshot",
    "build_trading_widgets": "trading widgets come with the trading pack: set `trading` (docs/trading.md)",
    "feed_subject_mapping": "name subjects as the feed does (FEED_SUBJECTS)",
}


class CrunchConfig(CrunchContract):
    """`CrunchContract` that also takes the reference's field names and shapes."""

    meta_type: Any = None
    feed_normalizer: str = "candle"
    input_type: Any = None
    ground_truth_type: type[BaseModel] | None = None
    score_type: type[BaseModel] = CrunchContract.model_fields["score_type"].default
    call_method: CallMethodConfig = Field(default_factory=CallMethodConfig)
    predict_service_class: type | None = None
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    compute_metrics: Any = None
    build_prediction_sink: Any = None
    build_score_snapshots: Any = None
    build_trading_widgets: Any = None
    feed_subject_mapping: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reference_fields(self) -> "CrunchConfig":
        known = set(CrunchConfig.model_fields)
        unknown = sorted(set(type(self).model_fields) - known)
        if unknown:
            raise ValueError(f"contract fields {unknown} are not supported by this node")
        tournament = self.predict_service_class is TournamentPredictService
        for name, why in _REFUSED_UNLESS_DEFAULT.items():
            # A tournament's input_type describes the uploaded samples; they reach models as uploaded.
            if getattr(self, name) and not (tournament and name == "input_type"):
                raise ValueError(f"{name} is not supported here ({why})")
        if self.feed_normalizer not in ("candle", "tick"):
            raise ValueError(f"feed_normalizer {self.feed_normalizer!r} is not supported (candle or tick)")
        if self.predict_service_class not in (None, RealtimePredictService, TournamentPredictService):
            raise ValueError(
                f"predict_service_class {self.predict_service_class.__name__} is not supported "
                "(the realtime or the tournament service)"
            )
        if tournament and self.scheduled_predictions:
            raise ValueError("a tournament's rounds are uploaded: set scheduled_predictions to []")
        call = self.call_method
        expected = TOURNAMENT_CALL_ARGS if tournament else DEFAULT_CALL_ARGS
        if call.method != "predict" or tuple(a.name for a in call.args) != expected:
            raise ValueError(
                f"call_method {call.method}({', '.join(a.name for a in call.args)}) is not supported: "
                f"models are asked predict({', '.join(expected)})"
            )
        missing = {"value", "success", "failed_reason"} - set(self.score_type.model_fields)
        if missing:
            raise ValueError(f"score_type {self.score_type.__name__} lacks fields {sorted(missing)}")
        if self.performance.timing_endpoint_enabled:
            log.info("performance.timing_endpoint_enabled: run timings are in Dagster's run view, no endpoint")
        if self.scoring_function is not default_scoring_function:
            # The reference hands its scoring function typed models, ours hands dicts.
            object.__setattr__(
                self, "scoring_function",
                typed_scoring(self.scoring_function, self.output_type, self.ground_truth_type or GroundTruth),
            )
        return self


def typed_scoring(function: Callable[..., Any], output_type: type[BaseModel], truth_type: type[BaseModel]) -> Callable[..., Any]:
    """`function` called with the prediction and truth validated into the contract's types."""

    @functools.wraps(function)
    def score(prediction: dict[str, Any], ground_truth: dict[str, Any]) -> Any:
        return function(output_type.model_validate(prediction), truth_type.model_validate(ground_truth))

    return score

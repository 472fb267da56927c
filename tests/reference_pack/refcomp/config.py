"""A contract module as an operator of the reference engine writes it: subclass and override."""

from pydantic import BaseModel, ConfigDict, Field

from crunch_node.crunch_config import (
    Aggregation,
    AggregationWindow,
    PerformanceConfig,
    ScheduledPrediction,
    ScoringFunction,
)
from crunch_node.crunch_config import CrunchConfig as BaseCrunchConfig
from crunch_node.services.realtime_predict import RealtimePredictService


class Guess(BaseModel):
    value: float = 0.0


class Truth(BaseModel):
    model_config = ConfigDict(extra="allow")
    profit: float = 0.0
    entry_price: float = 0.0


class Scored(BaseModel):
    model_config = ConfigDict(extra="allow")
    value: float = 0.0
    success: bool = True
    failed_reason: str | None = None


def score(prediction: Guess, ground_truth: Truth) -> Scored:
    if ground_truth.entry_price == 0:
        return Scored(success=False, failed_reason="no entry price")
    return Scored(value=prediction.value * ground_truth.profit * 100)


class CrunchConfig(BaseCrunchConfig):
    predict_service_class: type = RealtimePredictService
    feed_normalizer: str = "candle"
    ground_truth_type: type[BaseModel] = Truth
    output_type: type[BaseModel] = Guess
    score_type: type[BaseModel] = Scored
    scoring_function: ScoringFunction = score
    aggregation: Aggregation = Aggregation(
        windows={"score_6h": AggregationWindow(hours=6)}, value_field="value", ranking_key="score_6h"
    )
    scheduled_predictions: list[ScheduledPrediction] = Field(
        default_factory=lambda: [
            ScheduledPrediction(
                scope_key="guess-btcusdt-120s",
                scope={"subject": "BTCUSDT"},
                prediction_interval_seconds=60,
                resolve_horizon_seconds=120,
            )
        ]
    )
    metrics: list[str] = Field(default_factory=list)
    performance: PerformanceConfig = PerformanceConfig(timing_endpoint_enabled=True)


class WithHooks(CrunchConfig):
    realtime_service: dict = {}


class WithInputType(CrunchConfig):
    input_type: type[BaseModel] = Guess


class Tournament(CrunchConfig):
    predict_service_class: type = dict

"""A reference-style tournament config: `predict_service_class` the tournament service, models
called `predict(features)`, no scheduled predictions, scoring over pydantic models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from crunch_node.crunch_config import Aggregation, AggregationWindow, CallMethodArg, CallMethodConfig
from crunch_node.crunch_config import CrunchConfig as BaseCrunchConfig
from crunch_node.services.tournament_predict import TournamentPredictService


class SampleInput(BaseModel):
    model_config = ConfigDict(extra="allow")


class PriceOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    prediction: float = 0.0


class SaleTruth(BaseModel):
    model_config = ConfigDict(extra="allow")

    price: float = 0.0


class PriceScore(BaseModel):
    model_config = ConfigDict(extra="allow")

    value: float = 0.0
    success: bool = True
    failed_reason: str | None = None


def score_sale(prediction: PriceOutput, ground_truth: SaleTruth) -> PriceScore:
    # Attribute access: the node must hand typed models, as the reference does.
    return PriceScore(value=max(0.0, 1.0 - abs(prediction.prediction - ground_truth.price) / ground_truth.price))


class CrunchConfig(BaseCrunchConfig):
    predict_service_class: type = TournamentPredictService
    input_type: type[BaseModel] = SampleInput
    output_type: type[BaseModel] = PriceOutput
    ground_truth_type: type[BaseModel] = SaleTruth
    score_type: type[BaseModel] = PriceScore
    scoring_function: object = score_sale
    call_method: CallMethodConfig = Field(
        default_factory=lambda: CallMethodConfig(method="predict", args=[CallMethodArg(name="features", type="JSON")])
    )
    scheduled_predictions: list = Field(default_factory=list)
    aggregation: Aggregation = Field(
        default_factory=lambda: Aggregation(windows={"score_recent": AggregationWindow(hours=24)}, ranking_key="score_recent")
    )
    metrics: list[str] = Field(default_factory=list)

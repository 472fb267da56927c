"""The reference's `crunch_node.crunch_config` names, each bound to this node's counterpart."""

from coordinator_dagster.domain_types import (
    Aggregation,
    AggregationWindow,
    EnsembleConfig,
    InferenceOutput,
    PredictionScope,
    ScoreResult,
)
from coordinator_dagster.reference_contract import (
    CallMethodArg,
    CallMethodConfig,
    CrunchConfig,
    GroundTruth,
    Meta,
    PerformanceConfig,
    ScheduledPrediction,
    ScoringFunction,
)
from coordinator_dagster.scoring.emission import default_build_emission
from coordinator_dagster.scoring.scores import default_resolve_ground_truth
from coordinator_dagster.scoring.snapshots import default_aggregate_snapshot

__all__ = [
    "Aggregation",
    "AggregationWindow",
    "CallMethodArg",
    "CallMethodConfig",
    "CrunchConfig",
    "EnsembleConfig",
    "GroundTruth",
    "InferenceOutput",
    "Meta",
    "PerformanceConfig",
    "PredictionScope",
    "ScheduledPrediction",
    "ScoreResult",
    "ScoringFunction",
    "default_aggregate_snapshot",
    "default_build_emission",
    "default_resolve_ground_truth",
]

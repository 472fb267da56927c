"""Dagster resources: the lake, the contract, feed sources, the model runner and the clock.

Each external system sits behind an abstract resource with interchangeable implementations, so
tests and the embedded default swap the live source for a synthetic one without touching assets.
"""

from resources.clock import ClockResource
from resources.contract import Contract
from resources.feeds import CcxtFeed, FeedSource, PythFeed, SyntheticFeed
from resources.lake import LakeResource
from resources.models import InProcessModelRunner, ModelRunnerResource, OrchestratorModelRunner, RemoteModelRunner

__all__ = [
    "CcxtFeed",
    "ClockResource",
    "Contract",
    "FeedSource",
    "InProcessModelRunner",
    "LakeResource",
    "ModelRunnerResource",
    "OrchestratorModelRunner",
    "PythFeed",
    "RemoteModelRunner",
    "SyntheticFeed",
]

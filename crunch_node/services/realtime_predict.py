"""The reference's realtime service names: a marker (this node's rounds are realtime) and its hooks."""

from coordinator_dagster.reference_contract import RealtimePredictService, RealtimeServiceConfig

__all__ = ["RealtimePredictService", "RealtimeServiceConfig"]

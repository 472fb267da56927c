"""The reference's tournament service name: a marker (this node runs tournament rounds through its
`/tournament` routes and round assets)."""

from coordinator_dagster.reference_contract import TournamentPredictService

__all__ = ["TournamentPredictService"]

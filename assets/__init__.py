"""Pipeline assets, one module per stage; thin wrappers over `coordinator_dagster`'s functions.

feed_records → inputs → predictions → scores → snapshots → leaderboard, scores →
group_leaderboard (per horizon and asset × horizon), snapshots → checkpoints → audit_bundle. Every asset reads its inputs from the lake and writes its partitions there.
"""

from assets.audit_bundle import audit_bundle, build_audit_bundle_asset
from assets.checkpoints import build_checkpoints_asset, checkpoints
from assets.feeds import feed_records
from assets.group_leaderboard import group_leaderboard
from assets.inputs import inputs
from assets.leaderboard import leaderboard
from assets.predictions import predictions
from assets.scores import scores
from assets.snapshots import snapshots
from assets.what_if import what_if_report

window_assets = [feed_records, inputs, predictions, scores, snapshots]
default_assets = [*window_assets, leaderboard, group_leaderboard, checkpoints, audit_bundle, what_if_report]

__all__ = [
    "audit_bundle",
    "build_audit_bundle_asset",
    "build_checkpoints_asset",
    "checkpoints",
    "default_assets",
    "feed_records",
    "group_leaderboard",
    "inputs",
    "leaderboard",
    "predictions",
    "scores",
    "snapshots",
    "what_if_report",
    "window_assets",
]

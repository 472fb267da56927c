"""Tournament rounds driven outside Dagster (the report API's tournament routes) reported to the
Dagster instance as runless materializations of the round's assets on its dynamic partition, so
the UI shows an API-driven round as it shows one run from uploads (`assets/tournament.py`).

The asset keys and the partition set are the ones the tournament assets are defined with; the
metadata are the row counts those assets report, read back from the round's files.
"""

from __future__ import annotations

import logging
from typing import Any

from coordinator_dagster.partitions import TOURNAMENT_ROUNDS
from coordinator_dagster.tournament_lake import RoundLake

log = logging.getLogger(__name__)

# The tournament assets' key prefix (`tournament/<step>`).
PREFIX = "tournament"
INFERENCE_STEPS = ("inputs", "predictions")
SCORING_STEPS = ("scores", "snapshots", "leaderboard", "checkpoints")


def _counts(lake: RoundLake, round_id: str, step: str) -> dict[str, Any]:
    if step == "inputs":
        return {"samples": lake.read_round("samples", round_id).height}
    if step == "predictions":
        frame = lake.read_round("predictions", round_id)
        counts = dict(frame.group_by("status").len().iter_rows()) if frame.height else {}
        return {"predictions": frame.height, **{f"status_{k}": v for k, v in sorted(counts.items())}}
    if step == "scores":
        frame = lake.read_round("scores", round_id)
        return {"scores": frame.height, "failed": frame.filter(~frame["success"]).height if frame.height else 0}
    if step == "snapshots":
        return {"models": lake.read_round("snapshots", round_id).height}
    if step == "leaderboard":
        board = lake.read_leaderboard()
        return {"models": board.height if board is not None else 0}
    if step == "checkpoints":
        return {"checkpoints": lake.read_round("checkpoints", round_id).height}
    raise ValueError(f"unknown tournament step {step!r}")


def report_round(instance: Any, lake: RoundLake, round_id: str, steps: tuple[str, ...], description: str) -> None:
    """Each of `steps` as a runless materialization of `tournament/<step>` on the round's
    partition (added to the partition set when missing), with its row counts as metadata."""
    import dagster as dg

    if not instance.has_dynamic_partition(TOURNAMENT_ROUNDS.name, round_id):
        instance.add_dynamic_partitions(TOURNAMENT_ROUNDS.name, [round_id])
    for step in steps:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=dg.AssetKey([PREFIX, step]), partition=round_id, description=description, metadata=_counts(lake, round_id, step)
            )
        )


def report_round_quietly(instance: Any, lake: RoundLake, round_id: str, steps: tuple[str, ...], description: str) -> bool:
    """`report_round`, with a failure logged instead of raised: the round's files are written
    already, and the caller's answer must not depend on Dagster's storage. False if it failed."""
    if instance is None:
        return False
    try:
        report_round(instance, lake, round_id, steps, description)
    except Exception:  # any storage or instance error: the round itself is recorded
        log.exception("tournament round %s not reported to Dagster (%s)", round_id, ", ".join(steps))
        return False
    return True

"""The tournament round sensor: a folder of uploaded round files starts the round's runs.

`$COORDINATOR_HOME/tournament/uploads/<round_id>/features.json` adds the round as a partition and
requests its inference (inputs, predictions); `truth.json` requests its scoring (scores,
snapshots, leaderboard, checkpoints) once the round's predictions are recorded. Run keys carry
the file's content hash, so a file seen again requests nothing, and a corrected truth file requests a new scoring run (which the truth
lock refuses once the round's checkpoint left PENDING). The cursor is the hashes already seen.
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg

from assets.tournament import INFERENCE_ASSETS, SCORING_ASSETS, tournament_round_job
from coordinator_dagster.partitions import TOURNAMENT_ROUNDS
from coordinator_dagster.tournament_lake import ROUND_ID, RoundLake
from resources import LakeResource

SENSOR_INTERVAL_SECONDS = 5


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def plan_uploads(store: RoundLake, seen: dict[str, str], known_rounds: set[str]) -> tuple[list[dg.RunRequest], list[str], dict[str, str]]:
    """(run requests, rounds to add as partitions, the new cursor) for the upload folder."""
    requests, new_rounds, cursor = [], [], dict(seen)
    folders = sorted(p for p in store.uploads.glob("*") if p.is_dir() and ROUND_ID.match(p.name)) if store.uploads.is_dir() else []
    for folder in folders:
        round_id = folder.name
        for kind, selection in (("features", INFERENCE_ASSETS), ("truth", SCORING_ASSETS)):
            path = folder / f"{kind}.json"
            if not path.is_file():
                continue
            if kind == "truth" and not store.has_round("predictions", round_id):
                continue  # scored once its predictions are recorded
            digest = _digest(path)
            if cursor.get(f"{round_id}/{kind}") == digest:
                continue
            cursor[f"{round_id}/{kind}"] = digest
            if kind == "features" and round_id not in known_rounds and round_id not in new_rounds:
                new_rounds.append(round_id)
            requests.append(
                dg.RunRequest(
                    run_key=f"tournament:{round_id}:{kind}:{digest}", partition_key=round_id, asset_selection=selection,
                    tags={"tournament/round": round_id, "tournament/step": "inference" if kind == "features" else "scoring"},
                )
            )
    return requests, new_rounds, cursor


@dg.sensor(job=tournament_round_job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def tournament_upload_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Requests a round's inference when its features land and its scoring when its truth lands."""
    store = RoundLake(lake.home)
    seen = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(TOURNAMENT_ROUNDS.name))
    requests, new_rounds, cursor = plan_uploads(store, seen, known)
    if not requests:
        return dg.SkipReason(f"no new round files in {store.uploads}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[TOURNAMENT_ROUNDS.build_add_request(new_rounds)] if new_rounds else [],
        cursor=json.dumps(cursor, sort_keys=True),
    )

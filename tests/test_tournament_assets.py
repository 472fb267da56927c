"""Tournament rounds in Dagster: a round is a dynamic partition of the chain inputs → predictions
→ scores → snapshots → leaderboard → checkpoints; the upload sensor adds the round and requests
its inference when its features land and its scoring when its truth lands."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from assets.tournament import INFERENCE_ASSETS, SCORING_ASSETS
from coordinator_dagster import tournament_rounds as rounds
from coordinator_dagster.definitions import build_tournament_defs
from coordinator_dagster.partitions import TOURNAMENT_ROUNDS
from coordinator_dagster.settings import Settings
from coordinator_dagster.tournament_lake import RoundLake
from resources import ClockResource
from sensors.tournament import tournament_upload_sensor
from tests.tournament_fixtures import HOUSES, PRICES, build_contract, write_manifest


@pytest.fixture
def setup(tmp_path):
    home = tmp_path / "home"
    settings = Settings(home=home, models_manifest=str(write_manifest(tmp_path)))
    defs = build_tournament_defs(settings=settings, contract=build_contract(), resource_overrides={"clock": ClockResource(fixed_now="2026-11-20T12:00:00+00:00")})
    return defs, RoundLake(home), dg.DagsterInstance.ephemeral()


def upload(store: RoundLake, round_id: str, kind: str, data) -> None:
    path = store.upload_path(round_id, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def run(defs, instance, round_id, selection):
    job = defs.resolve_job_def("tournament_round_job")
    return job.execute_in_process(instance=instance, partition_key=round_id, asset_selection=selection)


@pytest.mark.process  # the models run in worker processes
def test_the_sensor_drives_a_round_from_uploaded_files(setup):
    defs, store, instance = setup
    sensor_context = lambda cursor: dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources={"lake": defs.resources["lake"]})  # noqa: E731

    skipped = tournament_upload_sensor(sensor_context(None))
    assert isinstance(skipped, dg.SkipReason)

    upload(store, "round-1", "features", {"features": HOUSES})
    upload(store, "round-1", "truth", PRICES)  # truth uploaded with the features: waits for inference
    first = tournament_upload_sensor(sensor_context(None))
    assert [r.run_key.split(":")[:3] for r in first.run_requests] == [["tournament", "round-1", "features"]]
    assert first.run_requests[0].asset_selection == INFERENCE_ASSETS
    assert first.dynamic_partitions_requests[0].partition_keys == ["round-1"]
    instance.add_dynamic_partitions(TOURNAMENT_ROUNDS.name, ["round-1"])
    assert run(defs, instance, "round-1", INFERENCE_ASSETS).success
    assert store.read_round("predictions", "round-1").height == 12

    second = tournament_upload_sensor(sensor_context(first.cursor))
    assert [r.run_key.split(":")[2] for r in second.run_requests] == ["truth"]
    assert second.run_requests[0].asset_selection == SCORING_ASSETS and not second.dynamic_partitions_requests
    assert run(defs, instance, "round-1", SCORING_ASSETS).success

    # Nothing new: the sensor skips.
    assert isinstance(tournament_upload_sensor(sensor_context(second.cursor)), dg.SkipReason)
    flaky = store.read_round("scores", "round-1").filter(model_id="flaky").sort("sample_id")
    assert flaky["sample_id"].to_list() == ["h1", "h3", "h4"] and flaky["value"].to_list() == [1.0] * 3
    assert store.read_leaderboard()["model_id"].to_list()[:2] == ["exact", "flaky"]
    assert rounds.checkpoint_status(store, "round-1") == "PENDING"
    materialized = {k.to_user_string() for k in instance.get_asset_keys()}
    assert materialized == {f"tournament/{name}" for name in ("inputs", "predictions", "scores", "snapshots", "leaderboard", "checkpoints")}

    # Corrected truth after the checkpoint was submitted: the sensor asks, the scores asset refuses.
    rounds.change_checkpoint_status(store, "round-1", "SUBMITTED", "tx", "test", rounds.dt.datetime.now(rounds.UTC))
    upload(store, "round-1", "truth", [dict(p, price=1.0) for p in PRICES])
    third = tournament_upload_sensor(sensor_context(second.cursor))
    assert [r.run_key.split(":")[2] for r in third.run_requests] == ["truth"]
    before = store.read_round("scores", "round-1")
    result = run_raising_false(defs, instance, "round-1", SCORING_ASSETS)
    assert not result.success
    assert store.read_round("scores", "round-1").equals(before)


def run_raising_false(defs, instance, round_id, selection):
    job = defs.resolve_job_def("tournament_round_job")
    return job.execute_in_process(instance=instance, partition_key=round_id, asset_selection=selection, raise_on_error=False)


def test_the_definitions_load(setup):
    defs, *_ = setup
    defs.validate_loadable(defs)
    job = defs.resolve_job_def("tournament_round_job")
    assert job.partitions_def == TOURNAMENT_ROUNDS

"""The predictions asset and the predict sensor with the model runner service (a real
`coordinator models serve` subprocess): live runs, replays, the registry, late rounds."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from assets import default_assets
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG
from resources import InProcessModelRunner, RemoteModelRunner
from coordinator_dagster.models.client import RunnerServiceError
from sensors import predict_sensor
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources
from tests.model_runner_process import entry, model_runner, write_manifest

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

NEXT_KEY = "2026-11-20-11:00"
EXAMPLES = [
    entry("momentum", "coordinator_dagster.models.examples:MomentumTracker", 0),
    entry("mean-reversion", "coordinator_dagster.models.examples:MeanReversionTracker", 1),
    entry("contrarian", "coordinator_dagster.models.examples:ContrarianTracker", 2),
]


def materialize(resources, selection, key, tags=None):
    result = dg.materialize(default_assets, selection=selection, resources=resources, partition_key=key, tags=tags)
    assert result.success
    return result


def feed(home, now, *keys):
    for key in keys:
        materialize(pipeline_resources(home, now), ["feed_records"], key)


ROUND_TIMEOUT = 60.0


@pytest.fixture
def runner(tmp_path, monkeypatch):
    manifest = tmp_path / "models.json"
    write_manifest(manifest, EXAMPLES)
    # No model here is slow: the generous timeout only bounds how long a fresh worker (a replay's,
    # or a model added to the manifest) may take to load on a loaded machine before its round.
    with model_runner(tmp_path, manifest, timeout=ROUND_TIMEOUT) as service:
        monkeypatch.setenv("MODEL_RUNNER_TOKEN", service.token)  # as make run hands it to the code location
        service.warm_up()
        service.manifest = manifest
        yield service


def test_a_replay_through_the_service_matches_the_in_process_runner(tmp_path, runner):
    """Replays run on fresh workers in time order: deterministic models give the same rows."""
    now = HOUR + dt.timedelta(hours=3)
    remote_home, local_home = tmp_path / "remote", tmp_path / "local"
    for home, model_runner_resource in ((remote_home, RemoteModelRunner(url=runner.url, timeout_seconds=ROUND_TIMEOUT)), (local_home, InProcessModelRunner())):
        feed(home, now, "2026-11-20-09:00", HOUR_KEY)
        result = materialize(pipeline_resources(home, now, model_runner=model_runner_resource), ["inputs", "predictions"], HOUR_KEY)
        metadata = result.asset_materializations_for_node("predictions")[0].metadata
        assert metadata["new_predictions"].value == 60 * 2 * 3
    remote, local = Lake(remote_home).read("predictions", HOUR_KEY), Lake(local_home).read("predictions", HOUR_KEY)
    columns = ["prediction_id", "status", "value", "output"]
    assert remote.select(columns).equals(local.select(columns))
    assert set(remote["status"]) == {"PENDING"}
    assert runner.get("/health")["sessions"] == 0  # the replay's session was torn down
    registry = Lake(remote_home).read("models")
    assert registry.select("model_id", "status", "active").sort("model_id").rows() == [
        ("contrarian", "healthy", True), ("mean-reversion", "healthy", True), ("momentum", "healthy", True),
    ]


def test_live_runs_use_the_live_models_and_record_the_registry(tmp_path, runner):
    home = tmp_path / "home"
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    feed(home, now, "2026-11-20-09:00", HOUR_KEY)
    remote = RemoteModelRunner(url=runner.url, timeout_seconds=ROUND_TIMEOUT)
    materialize(pipeline_resources(home, now, model_runner=remote), ["inputs", "predictions"], HOUR_KEY, tags={LIVE_ROUND_TAG: "2026-11-20T10:20:00Z"})
    lake = Lake(home)
    rows = lake.read("predictions", HOUR_KEY)
    by_round = rows.group_by("status").len().sort("status").rows()
    # 10:00 … 10:18 were missed (ABSENT, said so); 10:19 and 10:20 asked, for 2 subjects x 3 models.
    assert by_round == [("ABSENT", 19 * 6), ("PENDING", 2 * 6)]
    joined = lake.read("models").sort("model_id")
    assert joined["status"].to_list() == ["healthy"] * 3 and joined["joined_at"].to_list() == [now] * 3

    # The manifest changes while the node runs: the next live round uses the new set, the
    # registry keeps the removed model (inactive, "removed") and the first joined_at.
    write_manifest(runner.manifest, [EXAMPLES[0], entry("raiser", "hostile_models:Raiser", 3)])
    later = now + dt.timedelta(minutes=1)
    feed(home, later, HOUR_KEY)
    materialize(pipeline_resources(home, later, model_runner=remote), ["inputs", "predictions"], HOUR_KEY, tags={LIVE_ROUND_TAG: "2026-11-20T10:21:00Z"})
    newest = lake.read("predictions", HOUR_KEY).filter(pl.col("round_ts") == HOUR + dt.timedelta(minutes=21))
    # The new model's worker starts with this round; a model still loading never holds up the
    # others, so it answers only if it is ready before they finish, else it is ABSENT and says so.
    statuses = dict(newest.select("model_id", "status").unique().rows())
    assert statuses["momentum"] == "PENDING" and statuses["raiser"] in ("PENDING", "ABSENT")
    if statuses["raiser"] == "ABSENT":
        assert newest.filter(pl.col("model_id") == "raiser")["failed_reason"].str.starts_with("worker starting").all()
    registry = {r["model_id"]: r for r in lake.read("models").iter_rows(named=True)}
    assert registry["mean-reversion"]["active"] is False and registry["mean-reversion"]["status"] == "removed"
    assert registry["raiser"]["active"] and registry["raiser"]["joined_at"] == later
    assert registry["momentum"]["joined_at"] == now
    # Recorded rows are facts: the earlier rounds are unchanged.
    assert lake.read("predictions", HOUR_KEY).filter(pl.col("round_ts") < HOUR + dt.timedelta(minutes=21)).equals(rows)

    # The report API lists them with name, cruncher, status and when they joined.
    import httpx

    from api.app import create_app
    from api.settings import ApiSettings
    from tests.api_fixtures import serve

    with serve(create_app(ApiSettings(home=home))) as base_url:
        listed = {m["model_id"]: m for m in httpx.get(base_url + "/reports/models", timeout=10).json()}
        active = httpx.get(base_url + "/reports/models", params={"active": "true"}, timeout=10).json()
    assert listed["mean-reversion"]["status"] == "removed" and listed["mean-reversion"]["active"] is False
    assert listed["raiser"] == {
        "model_id": "raiser", "name": "Raiser", "cruncher": "c-raiser", "cruncher_index": 3,
        "joined_at": "2026-11-20T10:21:05Z", "active": True, "status": "healthy",
        # The dashboard's names for the same facts.
        "model_name": "Raiser", "cruncher_name": "c-raiser", "cruncher_id": "3", "deployment_id": "hostile_models:Raiser",
    }
    assert sorted(m["model_id"] for m in active) == ["momentum", "raiser"]


def test_a_runner_that_is_down_fails_the_run_with_a_clear_error(tmp_path):
    home = tmp_path / "home"
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    feed(home, now, HOUR_KEY)
    down = RemoteModelRunner(url="http://127.0.0.1:9", timeout_seconds=1.0, request_timeout_seconds=1.0)
    with pytest.raises(RunnerServiceError, match=r"is `coordinator models serve` running\?"):
        dg.materialize(default_assets, selection=["inputs", "predictions"], resources=pipeline_resources(home, now, model_runner=down), partition_key=HOUR_KEY)
    assert not Lake(home).exists("predictions", HOUR_KEY)  # nothing half-written


def test_rounds_missed_across_an_hour_boundary_are_recorded_late_not_dropped(tmp_path):
    """The node predicted 10:57, then was down until 11:02: the sensor's catch-up run records
    10:58 and 10:59 (in the previous hour) ABSENT as missed, and 11:00 in the live run."""
    home = tmp_path / "home"
    before = HOUR + dt.timedelta(minutes=57, seconds=5)
    feed(home, before, "2026-11-20-09:00", HOUR_KEY)
    materialize(pipeline_resources(home, before), ["inputs", "predictions"], HOUR_KEY, tags={LIVE_ROUND_TAG: "2026-11-20T10:57:00Z"})
    cursor = json.dumps({"btc-60s": "2026-11-20T10:57:00Z", "eth-60s": "2026-11-20T10:57:00Z"})

    back = HOUR + dt.timedelta(hours=1, minutes=2, seconds=5)
    feed(home, back, HOUR_KEY, NEXT_KEY)
    resources = pipeline_resources(home, back)
    with dg.instance_for_test() as instance:
        result = predict_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))
    requests = {r.run_key: r for r in result.run_requests}
    assert list(requests) == ["predict:2026-11-20T11:02:00Z", "predict-catch-up:2026-11-20T10:00:00Z"]
    assert requests["predict-catch-up:2026-11-20T10:00:00Z"].partition_key == HOUR_KEY
    for request in result.run_requests:
        materialize(resources, ["inputs", "predictions"], request.partition_key, tags=request.tags)

    lake = Lake(home)
    rows = pl.concat([lake.read("predictions", HOUR_KEY), lake.read("predictions", NEXT_KEY)])
    status = {ts.strftime("%H:%M"): s for ts, s in rows.group_by("round_ts").agg(pl.col("status").unique().sort().str.join(",")).rows()}
    assert status["10:57"] == "PENDING"
    assert status["10:58"] == status["10:59"] == status["11:00"] == "ABSENT"
    assert status["11:01"] == status["11:02"] == "PENDING"  # 11:01 is within one interval: still asked
    reasons = rows.filter(pl.col("status") == "ABSENT")["failed_reason"].unique().to_list()
    assert all(r.startswith("round missed: the node was not predicting at") for r in reasons)
    # The same sensor state again requests nothing twice.
    with dg.instance_for_test() as instance:
        again = predict_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=resources))
    assert isinstance(again, dg.SkipReason)


def test_no_catch_up_run_when_the_last_round_of_the_hour_was_recorded(tmp_path):
    home = tmp_path / "home"
    before = HOUR + dt.timedelta(minutes=59, seconds=5)
    feed(home, before, "2026-11-20-09:00", HOUR_KEY)
    cursor = json.dumps({"btc-60s": "2026-11-20T10:59:00Z", "eth-60s": "2026-11-20T10:59:00Z"})
    top = HOUR + dt.timedelta(hours=1, seconds=5)
    feed(home, top, HOUR_KEY, NEXT_KEY)

    def keys():
        with dg.instance_for_test() as instance:
            result = predict_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=pipeline_resources(home, top)))
        return [r.run_key for r in result.run_requests]

    # The 10:59 run was requested but its rows are not there (it failed): catch up.
    assert keys() == ["predict:2026-11-20T11:00:00Z", "predict-catch-up:2026-11-20T10:00:00Z"]
    materialize(pipeline_resources(home, before), ["inputs", "predictions"], HOUR_KEY, tags={LIVE_ROUND_TAG: "2026-11-20T10:59:00Z"})
    assert keys() == ["predict:2026-11-20T11:00:00Z"]  # recorded: nothing to catch up


def test_scoring_yields_to_the_live_rounds_prediction(tmp_path):
    """The candle that makes round 10:20 due also resolves 10:19 (truth at 10:20): while the node
    predicts live, the score run waits (at most 30 s) until 10:20's predictions are persisted."""
    from coordinator_dagster.definitions import build_defs
    from coordinator_dagster.settings import Settings
    from sensors import score_sensor

    home = tmp_path / "home"
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    feed(home, now, "2026-11-20-09:00", HOUR_KEY)

    def predict(at: dt.datetime, round_tag: str, instance) -> None:
        resources = pipeline_resources(home, at)
        job = build_defs(settings=Settings(home=home), resource_overrides=resources).resolve_job_def("predict_job")
        assert job.execute_in_process(instance=instance, partition_key=HOUR_KEY, tags={LIVE_ROUND_TAG: round_tag}).success

    def score(at: dt.datetime, instance):
        return score_sensor(dg.build_sensor_context(instance=instance, resources=pipeline_resources(home, at)))

    with dg.instance_for_test() as instance:
        # Before any live prediction the node is not predicting live: scoring does not wait.
        assert any(r.run_key == "score:2026-11-20T10:19:00Z" for r in score(now, instance).run_requests)
        predict(now - dt.timedelta(minutes=1), "2026-11-20T10:19:00Z", instance)  # the 10:19 live run
        held = score(now, instance)
        assert isinstance(held, dg.SkipReason)
        assert held.skip_message == (
            "scoring waits for the live round's predictions first: btc-60s: round 2026-11-20T10:20:00Z; eth-60s: round 2026-11-20T10:20:00Z"
        )
        # Not for ever: 30 s after the round, scoring goes ahead without them.
        late = score(HOUR + dt.timedelta(minutes=20, seconds=31), instance)
        assert [r.run_key for r in late.run_requests if r.run_key.startswith("score:")] == ["score:2026-11-20T10:19:00Z"]
        predict(now, "2026-11-20T10:20:00Z", instance)
        released = score(now, instance)
        assert [r.run_key for r in released.run_requests if r.run_key.startswith("score:")] == ["score:2026-11-20T10:19:00Z"]


def test_model_runner_url_selects_the_service(tmp_path):
    from coordinator_dagster.contracts import default_contract
    from coordinator_dagster.definitions import model_runner_resource
    from coordinator_dagster.settings import load_settings

    remote = model_runner_resource(load_settings({"MODEL_RUNNER_URL": "http://127.0.0.1:8100", "MODEL_TIMEOUT_SECONDS": "2.5"}))
    assert isinstance(remote, RemoteModelRunner) and remote.url == "http://127.0.0.1:8100" and remote.timeout_seconds == 2.5
    local = model_runner_resource(load_settings({"MODELS_MANIFEST": str(tmp_path / "m.json")}))
    assert isinstance(local, InProcessModelRunner) and local.manifest == str(tmp_path / "m.json")
    with pytest.raises(RunnerServiceError, match="must look like http://HOST:PORT"):
        RemoteModelRunner(url="ftp://x").open(default_contract().output_type)

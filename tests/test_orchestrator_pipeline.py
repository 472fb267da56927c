"""The predictions asset with models hosted by the (stand-in) model orchestrator: live runs give
the rows our own runner gives, the registry takes names and cruncher indexes from the
orchestrator's model infos, replays are refused, and MODEL_RUNNER=orchestrator selects it."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from assets import default_assets
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.examples import ContrarianTracker, MeanReversionTracker, MomentumTracker
from coordinator_dagster.models.rounds import LIVE_ROUND_TAG
from coordinator_dagster.settings import SettingsError, load_settings
from resources import InProcessModelRunner, OrchestratorModelRunner
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources
from tests.orchestrator_standin import ModelNode, StandInOrchestrator, entry

pytestmark = pytest.mark.process

TRACKER_BASE = "coordinator_dagster.models.tracker.TrackerBase"
TAG = {LIVE_ROUND_TAG: "2026-11-20T10:20:00Z"}


def materialize(resources, selection, key, tags=None, raise_on_error=True):
    return dg.materialize(default_assets, selection=selection, resources=resources, partition_key=key, tags=tags, raise_on_error=raise_on_error)


@pytest.fixture
def hosted():
    trackers = {"momentum": MomentumTracker, "mean-reversion": MeanReversionTracker, "contrarian": ContrarianTracker}
    nodes = [ModelNode(cls, class_name=TRACKER_BASE) for cls in trackers.values()]
    orchestrator = StandInOrchestrator("crunch-1", [entry(mid, node, wallet=f"W-{mid}") for mid, node in zip(trackers, nodes)])
    yield orchestrator
    orchestrator.close()
    for node in nodes:
        node.stop()


def test_live_rounds_through_the_orchestrator_match_our_own_runner(tmp_path, hosted):
    now = HOUR + dt.timedelta(minutes=20, seconds=5)
    crunchers = tmp_path / "crunchers.json"
    crunchers.write_text(json.dumps({"W-momentum": 0, "W-mean-reversion": 1, "W-contrarian": 2}))
    orchestrated = OrchestratorModelRunner(
        host="127.0.0.1", port=hosted.port, crunch_id="crunch-1", base_classname=TRACKER_BASE,
        crunchers_file=str(crunchers), streaks_path=str(tmp_path / "streaks.json"),
    )
    homes = {"orchestrator": (tmp_path / "o", orchestrated), "own": (tmp_path / "own", InProcessModelRunner())}
    for home, runner in homes.values():
        for key in ("2026-11-20-09:00", HOUR_KEY):
            materialize(pipeline_resources(home, now), ["feed_records"], key)
        assert materialize(pipeline_resources(home, now, model_runner=runner), ["inputs", "predictions"], HOUR_KEY, tags=TAG).success
    remote, local = (Lake(home).read("predictions", HOUR_KEY) for home, _ in homes.values())
    columns = ["prediction_id", "status", "value", "output"]
    assert remote.select(columns).equals(local.select(columns))
    # 10:00 … 10:18 missed (ABSENT), 10:19 and 10:20 asked: 2 subjects x 3 models.
    assert remote.group_by("status").len().sort("status").rows() == [("ABSENT", 19 * 6), ("PENDING", 2 * 6)]
    registry = Lake(tmp_path / "o").read("models").sort("model_id")
    assert registry.select("model_id", "name", "cruncher", "cruncher_index", "status").rows() == [
        ("contrarian", "contrarian model", "cruncher of contrarian", 2, "healthy"),
        ("mean-reversion", "mean-reversion model", "cruncher of mean-reversion", 1, "healthy"),
        ("momentum", "momentum model", "cruncher of momentum", 0, "healthy"),
    ]
    assert registry["entrypoint"].to_list() == ["orchestrator:dep-contrarian", "orchestrator:dep-mean-reversion", "orchestrator:dep-momentum"]

    # A replay (no live round) would feed the one live instance history: refused, nothing written.
    before = Lake(tmp_path / "o").read("predictions", HOUR_KEY)
    result = materialize(pipeline_resources(tmp_path / "o", now, model_runner=orchestrated), ["predictions"], HOUR_KEY, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "cannot replay history" in str(failure.event_specific_data.error)
    assert Lake(tmp_path / "o").read("predictions", HOUR_KEY).equals(before)


def test_model_runner_orchestrator_selects_it(tmp_path):
    from coordinator_dagster.definitions import model_runner_resource

    settings = load_settings({
        "COORDINATOR_HOME": str(tmp_path), "MODEL_RUNNER": "orchestrator", "MODEL_RUNNER_NODE_HOST": "orchestrator.internal",
        "MODEL_RUNNER_NODE_PORT": "9191", "CRUNCH_ID": "synth", "SECURE_CERT_DIR": "/certs", "MODEL_UNHEALTHY_AFTER": "4",
        "MODEL_TIMEOUT_SECONDS": "2", "ORCHESTRATOR_CRUNCHERS": "/x/crunchers.json",
    })
    resource = model_runner_resource(settings)
    assert isinstance(resource, OrchestratorModelRunner)
    assert (resource.host, resource.port, resource.crunch_id, resource.cert_dir, resource.failure_limit, resource.timeout_seconds) == (
        "orchestrator.internal", 9191, "synth", "/certs", 4, 2.0)
    assert resource.crunchers_file == "/x/crunchers.json"
    assert resource.streaks_path == str(tmp_path / "orchestrator" / "synth.streaks.json")
    with pytest.raises(SettingsError, match="CRUNCH_ID"):
        load_settings({"COORDINATOR_HOME": str(tmp_path), "MODEL_RUNNER": "orchestrator"})
    with pytest.raises(SettingsError, match="MODEL_RUNNER"):
        load_settings({"COORDINATOR_HOME": str(tmp_path), "MODEL_RUNNER": "elsewhere"})

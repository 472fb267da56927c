"""Tournament models run in worker processes, never in the caller's: a model that hangs on one
sample gets a FAILED prediction for that sample after the per-call timeout and the round goes on;
the API process never imports a model's module (the model answers from another pid); the runner
service answers the same calls over `POST /tournament/predict`."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from coordinator_dagster import tournament_rounds as rounds
from coordinator_dagster.models.client import RemoteTournament
from coordinator_dagster.models.http_server import ModelHTTPServer
from coordinator_dagster.models.manifest import load_manifest
from coordinator_dagster.models.service import ModelService
from coordinator_dagster.models.tournament_calls import LocalTournamentRunner
from coordinator_dagster.models.worker_handle import PoolSettings
from coordinator_dagster.tournament_lake import RoundLake
from tests.api_fixtures import serve
from tests.tournament_fixtures import HOUSES, PRICES, build_contract

pytestmark = pytest.mark.process  # worker processes, and servers on loopback

T0 = dt.datetime(2026, 11, 20, 12, tzinfo=dt.timezone.utc)
KEY = "sandbox-admin-key"

MODELS = '''
import os
import time


class Hangs:
    """$200 per square foot, except that it never answers for the 1500 sqft house."""

    def predict(self, features):
        if features["living_area_sqft"] == 1500:
            while True:
                time.sleep(1)
        return {"prediction": features["living_area_sqft"] * 200}


class WhereAmI:
    """$200 per square foot, saying which process answered."""

    def predict(self, features):
        return {"prediction": features["living_area_sqft"] * 200, "pid": os.getpid()}
'''


def write_models(folder: Path, module: str, classes: list[str]) -> Path:
    """The models as a participant's folder (its own module, outside the node's packages)."""
    code = folder / "models"
    code.mkdir(exist_ok=True)
    (code / f"{module}.py").write_text(MODELS)
    entries = [
        {"model_id": cls.lower(), "name": cls, "cruncher": f"c-{cls.lower()}", "cruncher_index": index, "entrypoint": f"{module}:{cls}", "path": str(code)}
        for index, cls in enumerate(classes)
    ]
    path = folder / "manifest.json"
    path.write_text(json.dumps(entries))
    return path


def test_a_model_that_hangs_on_one_sample_fails_that_sample_only(tmp_path):
    specs = load_manifest(write_models(tmp_path, "hanging_models", ["Hangs", "WhereAmI"]))
    contract = build_contract()
    lake = RoundLake(tmp_path / "home")
    runner = LocalTournamentRunner(specs, PoolSettings(timeout_seconds=1.0))
    try:
        rounds.record_features(lake, "r1", HOUSES, T0)
        predictions = rounds.run_inference(lake, "r1", runner, rounds.output_validator(contract.output_type))
    finally:
        runner.close()
    hangs = predictions.filter(model_id="hangs").sort("sample_id")
    assert hangs["status"].to_list() == ["PENDING", "FAILED", "PENDING", "PENDING"]
    assert hangs["failed_reason"][1] == "no answer within 1 s (worker killed and restarted)"
    assert predictions.filter(model_id="whereami")["status"].to_list() == ["PENDING"] * 4

    scores = rounds.score_and_publish(lake, "r1", contract, specs, PRICES, T0)
    scored = scores.filter(model_id="hangs").sort("sample_id")
    assert scored["sample_id"].to_list() == ["h1", "h3", "h4"]  # the sample after the hang too
    assert scored["value"].to_list() == [1.0, 1.0, 1.0]
    assert rounds.status(lake, "r1")["by_status"] == {"FAILED": 1, "SCORED": 7}


def test_the_api_process_never_imports_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", "tests.tournament_fixtures:build_contract")
    monkeypatch.setenv("MODELS_MANIFEST", str(write_models(tmp_path, "api_probe_models", ["WhereAmI"])))
    monkeypatch.setenv("COORDINATOR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MODEL_RUNNER_URL", raising=False)
    app = create_app(ApiSettings(home=tmp_path / "home", api_key=KEY, max_body_bytes=1 << 20))
    try:
        with serve(app) as url, httpx.Client(base_url=url, timeout=60) as http:
            answer = http.post("/tournament/rounds/r1/inference", json={"features": HOUSES}, headers={"X-API-Key": KEY})
            assert answer.status_code == 200, answer.text
            assert answer.json()["by_status"] == {"PENDING": 4}
    finally:
        app.state.tournament_runner.close()
    assert "api_probe_models" not in sys.modules
    outputs = [json.loads(o) for o in RoundLake(tmp_path / "home").read_round("predictions", "r1")["output"]]
    pids = {o["pid"] for o in outputs}
    assert len(pids) == 1 and os.getpid() not in pids
    assert [o["prediction"] for o in outputs] == [h["living_area_sqft"] * 200 for h in HOUSES]


def test_the_runner_service_answers_tournament_samples(tmp_path):
    manifest = write_models(tmp_path, "service_models", ["Hangs", "WhereAmI"])
    service = ModelService(str(manifest), PoolSettings(timeout_seconds=1.0), build_contract().output_type)
    server = ModelHTTPServer(("127.0.0.1", 0), service, "runner-token")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        remote = RemoteTournament(f"http://127.0.0.1:{server.server_address[1]}", timeout_seconds=1.0, token="runner-token")
        results = remote.predict_samples([{k: v for k, v in h.items() if k != "sample_id"} for h in HOUSES])
    finally:
        server.shutdown()
        server.server_close()
        service.close()
    assert [o.status.value for o in results["hangs"]] == ["PENDING", "FAILED", "PENDING", "PENDING"]
    assert results["hangs"][1].failed_reason == "no answer within 1 s (worker killed and restarted)"
    answers = [json.loads(o.output) for o in results["whereami"]]
    assert [a["prediction"] for a in answers] == [h["living_area_sqft"] * 200 for h in HOUSES]
    assert os.getpid() not in {a["pid"] for a in answers}
    assert "service_models" not in sys.modules

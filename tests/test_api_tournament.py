"""The tournament routes on a real uvicorn server: a round's inference and scoring over HTTP, its
status counts, the write routes refused without the admin key, and truth locked once the round's
checkpoint was submitted."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from tests.api_fixtures import serve
from tests.tournament_fixtures import HOUSES, PRICES, write_manifest

pytestmark = pytest.mark.process  # every test here starts a server

KEY = "tournament-admin-key"


@pytest.fixture
def base_url(tmp_path, monkeypatch):
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", "tests.tournament_fixtures:build_contract")
    monkeypatch.setenv("MODELS_MANIFEST", str(write_manifest(tmp_path)))
    monkeypatch.setenv("COORDINATOR_HOME", str(tmp_path / "home"))
    with serve(create_app(ApiSettings(home=tmp_path / "home", api_key=KEY, max_body_bytes=1 << 20))) as url:
        yield url


def test_write_routes_refuse_without_the_admin_key(base_url):
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for path, body in (("/tournament/rounds/r1/inference", {"features": HOUSES}), ("/tournament/rounds/r1/score", {"ground_truth": PRICES})):
            refused = http.post(path, json=body)
            assert refused.status_code == 401, refused.text
            assert http.post(path, json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert http.patch("/tournament/rounds/r1/checkpoint/status", json={"status": "SUBMITTED"}).status_code == 401
        # Nothing was recorded by the refused calls.
        assert http.get("/tournament/rounds/r1/status").json()["status"] == "not_found"


def test_a_round_over_http_with_a_failed_sample_and_the_truth_lock(base_url):
    admin = {"X-API-Key": KEY}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        inference = http.post("/tournament/rounds/r1/inference", json={"features": HOUSES}, headers=admin)
        assert inference.status_code == 200, inference.text
        body = inference.json()
        assert (body["model_count"], body["sample_count"], body["prediction_count"]) == (3, 4, 12)
        assert body["by_status"] == {"FAILED": 1, "PENDING": 11}
        assert http.post("/tournament/rounds/r1/inference", json={"features": HOUSES}, headers=admin).status_code == 409

        scored = http.post("/tournament/rounds/r1/score", json={"ground_truth": PRICES[::-1]}, headers=admin)
        assert scored.status_code == 200, scored.text
        flaky = sorted((r["sample_id"], r["score"], r["result"]["actual_price"]) for r in scored.json()["results"] if r["model_id"] == "flaky")
        assert flaky == [("h1", 1.0, 200_000.0), ("h3", 1.0, 400_000.0), ("h4", 1.0, 500_000.0)]

        status = http.get("/tournament/rounds/r1/status").json()
        assert status["by_status"] == {"FAILED": 1, "SCORED": 11}
        assert (status["status"], status["checkpoint_status"], status["sample_count"]) == ("scored", "PENDING", 4)

        checkpoint = http.get("/tournament/rounds/r1/checkpoint").json()
        assert checkpoint["status"] == "PENDING" and [e["model_id"] for e in checkpoint["entries"]] == ["exact", "flaky", "median"]
        moved = http.patch("/tournament/rounds/r1/checkpoint/status", json={"status": "SUBMITTED", "tx_hash": "tx1"}, headers=admin)
        assert moved.status_code == 200 and moved.json()["status"] == "SUBMITTED"

        wrong = [dict(p, price=1.0) for p in PRICES]
        locked = http.post("/tournament/rounds/r1/score", json={"ground_truth": wrong}, headers=admin)
        assert locked.status_code == 409 and "SUBMITTED" in locked.json()["detail"]
        assert http.patch("/tournament/rounds/r1/checkpoint/status", json={"status": "PENDING"}, headers=admin).status_code == 409
        assert http.post("/tournament/rounds/..x/inference", json={"features": HOUSES}, headers=admin).status_code == 422
        assert http.post("/tournament/rounds/r2/inference", json={"features": []}, headers=admin).status_code == 422
        mixed = [HOUSES[0], {"living_area_sqft": 1.0}]  # one sample with an id, one without
        assert http.post("/tournament/rounds/r2/inference", json={"features": mixed}, headers=admin).status_code == 400
        assert http.patch("/tournament/rounds/r1/checkpoint/status", json={"status": "DONE"}, headers=admin).status_code == 422


def test_the_dashboard_gets_tournament_widgets_over_these_routes(base_url):
    admin = {"X-API-Key": KEY}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        assert http.post("/tournament/rounds/r1/inference", json={"features": HOUSES}, headers=admin).status_code == 200
        assert http.post("/tournament/rounds/r1/score", json={"ground_truth": PRICES}, headers=admin).status_code == 200
        widgets = http.get("/reports/schema/metrics-widgets").json()
        assert [w["displayName"] for w in widgets] == ["Score per round", "Predictions per round", "Leaderboard windows"]
        rows = {w["endpointUrl"]: http.get(w["endpointUrl"]).json() for w in widgets}
        assert [(r["model_id"], r["value"]) for r in rows["/tournament/rounds/scores"]] == [("exact", 1.0), ("flaky", 1.0), ("median", pytest.approx((0.25 + 5 / 6 + 0.875 + 0.7) / 4))]
        [round_row] = rows["/tournament/rounds"]
        assert (round_row["round_id"], round_row["SCORED"], round_row["FAILED"], round_row["PENDING"]) == ("r1", 11, 1, 0)
        assert [r["model_id"] for r in rows["/tournament/leaderboard"]] == ["exact", "flaky", "median"]
        for widget in widgets:
            x = widget["nativeConfiguration"]["xAxis"]["name"]
            assert all(x in row for row in rows[widget["endpointUrl"]]), widget["displayName"]


def test_the_shared_leaderboard_and_checkpoint_routes_serve_the_tournament(base_url):
    admin = {"X-API-Key": KEY}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        assert http.get("/reports/leaderboard").json() == [] and http.get("/reports/checkpoints").json() == []
        assert http.post("/tournament/rounds/r1/inference", json={"features": HOUSES}, headers=admin).status_code == 200
        assert http.post("/tournament/rounds/r1/score", json={"ground_truth": PRICES}, headers=admin).status_code == 200

        median = pytest.approx((0.25 + 5 / 6 + 0.875 + 0.7) / 4)
        board = http.get("/reports/leaderboard").json()
        assert [(r["rank"], r["model_id"], r["ranking_value"], r["score_recent"]) for r in board] == [
            (1, "exact", 1.0, 1.0), (1, "flaky", 1.0, 1.0), (2, "median", median, median)
        ]
        assert all(r["ranking_key"] == "score_recent" and r["prediction_count"] == 4 for r in board)

        [listed] = http.get("/reports/checkpoints").json()
        assert (listed["checkpoint_id"], listed["id"], listed["status"], listed["model_count"]) == ("r1", "r1", "PENDING", 3)
        assert [e["model_id"] for e in listed["meta"]["ranking"]] == ["exact", "flaky", "median"]
        assert len(listed["entries"][0]["cruncher_rewards"]) == 3
        assert http.get("/reports/checkpoints/latest").json()["checkpoint_id"] == "r1"

        # The round's status changes show on the shared routes, and a change made there locks the round.
        moved = http.patch("/tournament/rounds/r1/checkpoint/status", json={"status": "SUBMITTED", "tx_hash": "tx1"}, headers=admin)
        assert moved.status_code == 200
        [listed] = http.get("/reports/checkpoints").json()
        assert (listed["status"], listed["tx_hash"]) == ("SUBMITTED", "tx1") and listed["submitted_at"] is not None
        assert http.get("/reports/checkpoints/r1").json()["status"] == "SUBMITTED"
        shared = http.patch("/reports/checkpoints/r1/status", json={"status": "CLAIMABLE"}, headers=admin)
        assert shared.status_code == 200, shared.text
        assert http.get("/tournament/rounds/r1/status").json()["checkpoint_status"] == "CLAIMABLE"
        wrong = [dict(p, price=1.0) for p in PRICES]
        assert http.post("/tournament/rounds/r1/score", json={"ground_truth": wrong}, headers=admin).status_code == 409


@pytest.mark.parametrize("dagster_home_exists", [True, False])
def test_a_round_over_http_is_reported_to_dagster_on_its_partition(tmp_path, monkeypatch, dagster_home_exists):
    import dagster as dg

    from coordinator_dagster.partitions import TOURNAMENT_ROUNDS

    dagster_home = tmp_path / "dagster_home"
    if dagster_home_exists:
        dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", "tests.tournament_fixtures:build_contract")
    monkeypatch.setenv("MODELS_MANIFEST", str(write_manifest(tmp_path)))
    monkeypatch.setenv("COORDINATOR_HOME", str(tmp_path / "home"))
    admin = {"X-API-Key": KEY}
    with serve(create_app(ApiSettings(home=tmp_path / "home", api_key=KEY, max_body_bytes=1 << 20))) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/tournament/rounds/r1/inference", json={"features": HOUSES}, headers=admin).status_code == 200
        # A DAGSTER_HOME that is no instance leaves the round unreported, not failed.
        assert http.post("/tournament/rounds/r1/score", json={"ground_truth": PRICES}, headers=admin).status_code == 200
    if not dagster_home_exists:
        assert not dagster_home.exists()
        return
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    assert instance.get_dynamic_partitions(TOURNAMENT_ROUNDS.name) == ["r1"]

    def reported(step: str) -> dict:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(["tournament", step]), asset_partitions=["r1"]), limit=5).records
        assert len(records) == 1, step
        return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}

    assert reported("inputs") == {"samples": 4}
    assert reported("predictions") == {"predictions": 12, "status_FAILED": 1, "status_PENDING": 11}
    assert reported("scores") == {"scores": 11, "failed": 0}
    assert reported("snapshots") == {"models": 3} and reported("leaderboard") == {"models": 3}
    assert reported("checkpoints") == {"checkpoints": 1}

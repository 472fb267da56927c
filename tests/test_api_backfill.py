"""Feed backfills through Dagster's GraphQL API, against a stand-in webserver on loopback that
validates every query against dagster-graphql's real schema and keeps backfills in memory."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from tests.api_fixtures import fake_dagster, new_dagster_state, seed_extras, seed_lake, serve

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

KEY = "admin-key"
AUTH = {"X-API-Key": KEY}


@pytest.fixture
def backfill_api(tmp_path):
    seeded = seed_lake(tmp_path / "home")
    seed_extras(seeded.lake)
    state = new_dagster_state()
    with serve(fake_dagster(state), health_path="/docs") as dagster_url:
        settings = ApiSettings(home=seeded.lake.home, api_key=KEY, dagster_graphql_url=f"{dagster_url}/graphql")
        with serve(create_app(settings)) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
            yield state, http


def test_backfill_lifecycle(backfill_api) -> None:
    state, http = backfill_api
    feeds = http.get("/reports/backfill/feeds", headers=AUTH).json()
    assert [(f["subject"], f["record_count"]) for f in feeds] == [("BTC", 180), ("ETH", 60)]
    body = {"start": "2026-11-20T00:00:00Z", "end": "2026-11-20T03:00:00Z"}
    assert http.post("/reports/backfill", json=body).status_code == 401
    started = http.post("/reports/backfill", json=body, headers=AUTH)
    assert started.status_code == 202, started.text
    job = started.json()
    assert (job["backfill_id"], job["partition_count"], job["first_partition"], job["last_partition"]) == (
        "bf1", 3, "2026-11-20-00:00", "2026-11-20-02:00"
    )
    assert job["run_status_counts"] == {"QUEUED": 1}
    again = http.post("/reports/backfill", json=body, headers=AUTH)
    assert again.status_code == 409 and "bf1" in again.json()["detail"]
    state["backfills"][0]["status"] = "COMPLETED_SUCCESS"
    assert http.post("/reports/backfill", json=body, headers=AUTH).status_code == 202
    jobs = http.get("/reports/backfill/jobs", headers=AUTH).json()
    assert [j["backfill_id"] for j in jobs] == ["bf2", "bf1"]
    assert http.get("/reports/backfill/jobs/bf1", headers=AUTH).json()["status"] == "COMPLETED_SUCCESS"
    missing = http.get("/reports/backfill/jobs/bf9", headers=AUTH)
    assert missing.status_code == 404 and "bf9" in missing.json()["detail"]
    assert http.get("/reports/backfill/jobs/bad id!", headers=AUTH).status_code == 422


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"start": "2026-11-20T00:30:00Z", "end": "2026-11-20T03:00:00Z"}, "on the hour"),
        ({"start": "2026-11-20T03:00:00Z", "end": "2026-11-20T03:00:00Z"}, "after start"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-11-20T03:00:00Z"}, "at most"),
        ({"start": "yesterday", "end": "2026-11-20T03:00:00Z"}, "start"),
        ({"start": "2026-11-20T00:00:00Z", "end": "2026-11-20T03:00:00Z", "asset": "x"}, "extra"),
    ],
)
def test_backfill_strict_input(backfill_api, body: dict, reason: str) -> None:
    state, http = backfill_api
    response = http.post("/reports/backfill", json=body, headers=AUTH)
    assert response.status_code == 422 and reason in response.text
    assert not any("launchPartitionBackfill" in q for q in state["queries"])


def test_an_unreachable_dagster_is_a_502_with_the_reason(tmp_path) -> None:
    settings = ApiSettings(home=tmp_path, dagster_graphql_url="http://127.0.0.1:9/graphql")
    with serve(create_app(settings)) as base_url:
        response = httpx.get(f"{base_url}/reports/backfill/jobs")
    assert response.status_code == 502 and "not reachable" in response.json()["detail"]

"""The fast lane (`api.fast_lane`): a request giving none of its route's parameters gets exactly
what FastAPI's route answers (bytes and headers), without FastAPI; anything else still goes to
FastAPI (parameters, validation, 404s)."""

from __future__ import annotations

import httpx
import pytest

from api import fast_lane
from api.app import create_app
from api.settings import ApiSettings
from tests.api_fixtures import CHECKPOINT_KEYS, leaderboard_frame, seed_extras, seed_lake, serve

pytestmark = pytest.mark.process

NO_CACHE = {"cache-control": "no-cache"}
DASHBOARD_QUERY = {"projectIds": "m-alpha,m-beta", "start": "2026-11-20T00:00:00", "end": "2026-11-21T00:00:00"}


@pytest.fixture
def client(tmp_path, monkeypatch):
    seeded = seed_lake(tmp_path / "home")
    seed_extras(seeded.lake)
    app = create_app(ApiSettings(home=seeded.lake.home))
    served: list[str] = []
    real = fast_lane.FastLane.__call__

    async def spy(self, scope, receive, send):
        # Whether the lane answered itself: FastAPI's answers pass through `self.app`.
        inner = self.app
        passed: list[bool] = []

        async def through(s, r, w):
            passed.append(True)
            await inner(s, r, w)

        self.app = through
        try:
            await real(self, scope, receive, send)
        finally:
            self.app = inner
        if not passed:
            served.append(scope["path"])

    monkeypatch.setattr(fast_lane.FastLane, "__call__", spy)
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=60, headers=NO_CACHE) as http:
        yield http, served, seeded


def test_default_answers_are_fastapis_bytes_and_headers(client) -> None:
    http, served, _ = client
    checkpoint = f"CKP-{CHECKPOINT_KEYS[1]}"
    # (path, the same answer asked with a parameter the route reads set to its default: FastAPI)
    pairs = [
        ("/reports/leaderboard", {"include_ensembles": "false"}),
        ("/reports/checkpoints", {"limit": "100"}),
        ("/reports/schema", None),
        ("/reports/schema/leaderboard-columns", None),
        ("/reports/schema/metrics-widgets", None),
        (f"/reports/checkpoints/{checkpoint}/emission", None),
        ("/reports/emissions/latest", None),
    ]
    for path, explicit in pairs:
        served.clear()
        fast = http.get(path, params=DASHBOARD_QUERY)
        assert served == [path], path  # answered by the lane
        assert fast.status_code == 200
        if explicit is not None:
            slow = http.get(path, params=explicit)
            assert served == [path], path  # a parameter the route reads: FastAPI answered
            assert fast.content == slow.content, path
            assert [(k, v) for k, v in fast.headers.items() if k != "date"] == [(k, v) for k, v in slow.headers.items() if k != "date"], path
    served.clear()
    models = http.get("/reports/models")
    assert served == ["/reports/models"]
    assert models.json() and http.get("/reports/models", params={"active": "true"}).json() != [] and served == ["/reports/models"]


def test_parameters_validation_and_misses_stay_fastapis(client) -> None:
    http, served, seeded = client
    assert http.get("/reports/leaderboard", params={"include_ensembles": "maybe"}).status_code == 422
    assert http.get("/reports/checkpoints", params={"limit": "0"}).status_code == 422
    assert http.get("/reports/checkpoints/CKP-none/emission").status_code == 404
    assert http.get("/reports/checkpoints/" + "x" * 80 + "/emission").status_code == 422
    assert served == []
    # The lane's answer follows a rewrite like the route's.
    seeded.lake.write("leaderboard", leaderboard_frame(version=7))
    assert max(row["prediction_count"] for row in http.get("/reports/leaderboard").json()) == 307
    assert served == ["/reports/leaderboard"]

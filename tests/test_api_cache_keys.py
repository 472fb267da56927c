"""The response cache's key: the query parameters a route reads (a dashboard's extra `projectIds`,
`start`, `end` on a route that ignores them is the same answer), and `Cache-Control: no-cache`."""

from __future__ import annotations

import datetime as dt

import httpx
import polars as pl
import pytest

from fastapi.routing import APIRoute

from api.app import create_app
from api.cache import IDENTITY_TTL, ResponseCache
from api.routes import ROUTES
from api.settings import ApiSettings
from tests.api_fixtures import seed_lake, serve

pytestmark = pytest.mark.process  # the no-cache test starts a server


def test_keys_keep_only_what_the_route_reads(tmp_path) -> None:
    seeded = seed_lake(tmp_path / "home")
    routes = [route for router, _ in ROUTES for route in router.routes if isinstance(route, APIRoute)]
    cache = ResponseCache(app=None, lake=seeded.lake, routes=routes)
    key = cache._query_key
    board = "/reports/leaderboard"
    assert key(board, b"projectIds=a,b&start=2026-11-20&_=1") == key(board, b"") == ()
    assert key(board, b"include_ensembles=true&projectIds=x") == (("include_ensembles", "true"),)
    assert key(board, b"include_ensembles=true") != key(board, b"include_ensembles=false")
    preds = "/v1/reports/predictions"
    assert key(preds, b"limit=5&start=2026-11-20T00:00&_miss=7") == key(preds, b"start=2026-11-20T00:00&limit=5")
    assert key(preds, b"limit=5&start=2026-11-20T00:00") != key(preds, b"limit=5&start=2026-11-20T01:00")
    # Repeated values of one parameter keep their order; a path no route serves keeps its raw query.
    assert key(preds, b"model_id=b&model_id=a") != key(preds, b"model_id=a&model_id=b")
    assert key("/nowhere", b"x=1") == b"x=1"


def test_no_cache_computes_afresh(tmp_path) -> None:
    seeded = seed_lake(tmp_path / "home")
    now = [0.0]  # the cache's clock: frozen, so a rewritten hour stays cached until asked afresh
    app = create_app(ApiSettings(home=seeded.lake.home), cache_clock=lambda: now[0])
    with serve(app) as base_url, httpx.Client(base_url=base_url) as http:
        page = http.get("/v1/reports/predictions", params={"limit": 5}).json()
        hour = seeded.raw_predictions.filter(pl.col("round_ts") >= seeded.end - dt.timedelta(hours=1))
        seeded.lake.write("predictions", hour.head(4), seeded.window_keys[-1])
        assert http.get("/v1/reports/predictions", params={"limit": 5, "projectIds": "x"}).json() == page
        fresh = http.get("/v1/reports/predictions", params={"limit": 5}, headers={"Cache-Control": "no-cache"}).json()
        assert fresh["total"] == page["total"] - hour.height + 4
        # The fresh answer was stored: the next plain request gets it too.
        assert http.get("/v1/reports/predictions", params={"limit": 5}).json() == fresh
        now[0] += IDENTITY_TTL
        assert http.get("/v1/reports/predictions", params={"limit": 5}).json() == fresh

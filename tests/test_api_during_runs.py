"""The API keeps answering, with zero errors, while Dagster materializes partitions in-process:
a ranged feed backfill, the window assets, the leaderboard and a checkpoint."""

from __future__ import annotations

import datetime as dt
import threading

import dagster as dg
import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from assets import default_assets
from tests.api_fixtures import serve
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources
from tests.interleave import ReadTurns

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

ROUTES = [
    ("/v1/reports/predictions", {"limit": 50}),
    ("/v1/reports/predictions", {"status": "SCORED", "limit": 10}),
    ("/reports/leaderboard", {}),
    ("/reports/feeds", {}),
    ("/reports/snapshots", {}),
    ("/reports/checkpoints", {}),
    ("/reports/models/global", {}),
    ("/healthz", {}),
]


def test_api_answers_every_request_while_dagster_materializes(tmp_path) -> None:
    home = tmp_path / "home"
    resources = pipeline_resources(home, HOUR + dt.timedelta(hours=3))
    failures: list[str] = []
    stop = threading.Event()
    turns = ReadTurns(readers=3)
    runs = [0]

    def reader(number: int, base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            i = number  # the readers start on different routes
            while not stop.is_set():
                path, params = ROUTES[i % len(ROUTES)]
                i += 1
                try:
                    response = http.get(path, params=params)
                    if response.status_code != 200:
                        failures.append(f"{path}: {response.status_code} {response.text[:300]}")
                except httpx.HTTPError as exc:
                    failures.append(f"{path}: {exc!r}")
                turns.finished(number)

    def run(selection, partition_key=None, tags=None):
        dg.materialize(default_assets, selection=selection, resources=resources, partition_key=partition_key, tags=tags)
        runs[0] += 1
        # Every reader asks every route at least once after each run (and keeps asking during the next).
        turns.wait_for_fresh_reads(len(ROUTES) + 1)

    with serve(create_app(ApiSettings(home=home))) as base_url:
        threads = [threading.Thread(target=reader, args=(n, base_url)) for n in range(3)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(2):  # the second pass replaces every partition the first one wrote
                run(["feed_records"], tags={"dagster/asset_partition_range_start": "2026-11-20-08:00", "dagster/asset_partition_range_end": "2026-11-20-11:00"})
                run(["inputs", "predictions", "scores", "snapshots"], HOUR_KEY)
                run(["leaderboard"])
            run(["checkpoints"], "2026-11-15")
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        final = httpx.get(f"{base_url}/v1/reports/predictions", params={"limit": 1}).json()
    assert failures == []
    assert runs[0] == 7
    assert all(turns.count(n) >= runs[0] * (len(ROUTES) + 1) for n in range(3))
    assert final["total"] > 0

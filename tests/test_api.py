"""The report API against a real uvicorn server on 127.0.0.1, over a lake seeded in tmp_path.

Nothing of ours is mocked: the lake is written through `Lake.write*`/`append_event`, the app is
`create_app(ApiSettings(home=...))`, and every request goes over HTTP with httpx.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import httpx
import polars as pl
import pytest

from api.app import create_app
from api.settings import ApiSettings
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from tests.api_fixtures import (
    CHECKPOINT_KEYS,
    MODELS,
    SUBMITTED_TX,
    WINDOWS,
    SeededLake,
    leaderboard_frame,
    rewrite_window,
    seed_lake,
    serve,
)
from tests.interleave import ReadTurns

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

PREDICTION_FIELDS = (
    "prediction_id",
    "input_id",
    "scope_key",
    "subject",
    "model_id",
    "round_ts",
    "resolvable_at",
    "status",
    "value",
    "failed_reason",
    "score_value",
)


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_items(frame: pl.DataFrame) -> list[dict]:
    """The API's items for `frame`'s rows, in the API's order."""
    return [
        {**row, "round_ts": iso(row["round_ts"]), "resolvable_at": iso(row["resolvable_at"])}
        for row in frame.select(PREDICTION_FIELDS).iter_rows(named=True)
    ]


def assert_422(response: httpx.Response, parameter: str) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(error["loc"][-1] == parameter and error["msg"] for error in detail), detail


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeededLake:
    return seed_lake(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def client(seeded: SeededLake):
    with serve(create_app(ApiSettings(home=seeded.lake.home))) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


# ---- health, leaderboard, empty lake ---------------------------------------------------------


def test_healthz_names_the_lake_and_counts_files(client: httpx.Client, seeded: SeededLake) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["lake"] == str(seeded.lake.root)
    hours = len(seeded.window_keys)
    assert body["tables"]["predictions"] == hours
    assert body["tables"]["scores"] == hours
    assert body["tables"]["leaderboard"] == 1
    assert body["tables"]["checkpoints"] == 2
    assert body["tables"]["checkpoint_events"] == 1
    assert body["tables"]["feed_records"] == 0


def test_leaderboard_is_ranked_and_groups_windows(client: httpx.Client) -> None:
    response = client.get("/reports/leaderboard")
    assert response.status_code == 200
    entries = response.json()
    assert [e["rank"] for e in entries] == [1, 2, 3]
    assert [e["model_id"] for e in entries] == [m[0] for m in MODELS]
    values = [e["ranking_value"] for e in entries]
    assert values == sorted(values, reverse=True)
    first = entries[0]
    assert first["model_name"] == "Alpha" and first["cruncher"] == "alice"
    assert first["ranking_key"] == "score_recent"
    assert list(first["windows"]) == list(WINDOWS)
    assert first["windows"]["score_recent"] == first["ranking_value"] == pytest.approx(0.4)
    assert first["windows"]["score_steady"] == pytest.approx(0.2)
    assert entries[2]["windows"]["score_anchor"] is None
    assert first["prediction_count"] == 100
    assert first["as_of"] == "2026-11-21T00:00:00Z"
    # The dashboard reads each window at the top level too (tests/test_api_dashboard.py).
    assert all(first[name] == first["windows"][name] for name in WINDOWS)
    assert not any(e["is_ensemble"] for e in entries)


def test_ensembles_are_listed_only_when_asked_for(client: httpx.Client) -> None:
    entries = client.get("/reports/leaderboard", params={"include_ensembles": "true"}).json()
    assert [e["model_id"] for e in entries][-1] == "__ensemble_main__"
    assert entries[-1]["rank"] is None and entries[-1]["is_ensemble"] is True
    assert [e["rank"] for e in entries[:-1]] == [1, 2, 3]
    assert client.get("/reports/leaderboard", params={"include_ensembles": "maybe"}).status_code == 422


def test_an_empty_lake_answers_empty_not_errors(tmp_path) -> None:
    with serve(create_app(ApiSettings(home=tmp_path / "nothing-yet"))) as base_url, httpx.Client(base_url=base_url) as http:
        assert set(http.get("/healthz").json()["tables"].values()) == {0}
        assert http.get("/reports/leaderboard").json() == []
        assert http.get("/v1/reports/predictions").json() == {"items": [], "limit": 100, "offset": 0, "total": 0}
        ranged = http.get("/v1/reports/predictions", params={"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"})
        assert ranged.status_code == 200 and ranged.json()["total"] == 0
        assert http.get("/reports/checkpoints").json() == []
        assert http.get("/reports/checkpoints", params={"status": "PAID"}).json() == []
        assert http.get("/reports/checkpoints/CKP-2026-11-15/emission").status_code == 404


# ---- predictions ------------------------------------------------------------------------------


def test_predictions_default_page_is_newest_first(client: httpx.Client, seeded: SeededLake) -> None:
    body = client.get("/v1/reports/predictions").json()
    assert (body["limit"], body["offset"], body["total"]) == (100, 0, seeded.predictions.height)
    assert body["items"] == as_items(seeded.predictions.head(100))


def test_predictions_pages_cover_every_row_once(client: httpx.Client, seeded: SeededLake) -> None:
    total = seeded.predictions.height
    seen: list[dict] = []
    for offset in range(0, total, 10):
        body = client.get("/v1/reports/predictions", params={"limit": 10, "offset": offset}).json()
        assert (body["limit"], body["offset"], body["total"]) == (10, offset, total)
        assert len(body["items"]) == min(10, total - offset)
        seen += body["items"]
    assert seen == as_items(seeded.predictions)
    beyond = client.get("/v1/reports/predictions", params={"offset": total + 5}).json()
    assert beyond["items"] == [] and beyond["total"] == total
    assert len(client.get("/v1/reports/predictions", params={"limit": 1000}).json()["items"]) == total


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("model_id", "m-gamma"),
        ("subject", "ETH"),
        ("scope_key", "btc-60s"),
        ("status", "SCORED"),
        ("status", "PENDING"),
        ("status", "FAILED"),
        ("status", "ABSENT"),
        ("model_id", "no-such-model"),
    ],
)
def test_predictions_filter(client: httpx.Client, seeded: SeededLake, param: str, value: str) -> None:
    expected = seeded.predictions.filter(pl.col(param) == value)
    body = client.get("/v1/reports/predictions", params={param: value, "limit": 1000}).json()
    assert body["total"] == expected.height
    assert body["items"] == as_items(expected)


def test_predictions_filters_combine(client: httpx.Client, seeded: SeededLake) -> None:
    params = {"model_id": "m-alpha", "subject": "BTC", "status": "SCORED", "limit": 5, "offset": 2}
    expected = seeded.predictions.filter(
        (pl.col("model_id") == "m-alpha") & (pl.col("subject") == "BTC") & (pl.col("status") == "SCORED")
    )
    body = client.get("/v1/reports/predictions", params=params).json()
    assert body["total"] == expected.height
    assert body["items"] == as_items(expected.slice(2, 5))


def test_scored_status_is_derived_from_scores(client: httpx.Client, seeded: SeededLake) -> None:
    items = client.get("/v1/reports/predictions", params={"limit": 1000}).json()["items"]
    assert {i["status"] for i in items} == {"PENDING", "SCORED", "FAILED", "ABSENT"}
    last_hour = iso(seeded.end - dt.timedelta(hours=1))
    for item in items:
        if item["status"] == "SCORED":
            assert item["score_value"] is not None and item["round_ts"] < last_hour
        elif item["status"] == "PENDING":  # the newest hour has no scores yet
            assert item["score_value"] is None and item["round_ts"] >= last_hour
        else:
            assert item["score_value"] is None and item["failed_reason"]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-20T01:00:00Z", "2026-11-20T02:00:00Z"),
        ("2026-11-20T01:00:00", "2026-11-20T02:00:00"),  # naive means UTC
        ("2026-11-20T03:00:00+02:00", "2026-11-20T04:00:00+02:00"),  # the same hour, with an offset
        ("2026-11-20T01:30:00Z", None),
        (None, "2026-11-20T00:30:00Z"),
        ("2026-11-19T22:00:00Z", "2026-11-21T00:00:00Z"),  # spans days: the date pruning must not cut rows
        ("2026-11-20T01:00:00Z", "2026-11-20T01:00:00Z"),  # half-open: empty
    ],
)
def test_predictions_time_range_is_half_open_on_round_ts(
    client: httpx.Client, seeded: SeededLake, start: str | None, end: str | None
) -> None:
    expected = seeded.predictions
    params: dict[str, str | int] = {"limit": 1000}
    if start:
        params["start"] = start
        moment = dt.datetime.fromisoformat(start)
        expected = expected.filter(pl.col("round_ts") >= (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)))
    if end:
        params["end"] = end
        moment = dt.datetime.fromisoformat(end)
        expected = expected.filter(pl.col("round_ts") < (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)))
    body = client.get("/v1/reports/predictions", params=params).json()
    assert body["total"] == expected.height
    assert body["items"] == as_items(expected)


def test_predictions_time_range_with_filters(client: httpx.Client, seeded: SeededLake) -> None:
    params = {"start": "2026-11-20T00:00:00Z", "end": "2026-11-20T01:00:00Z", "model_id": "m-gamma", "status": "FAILED"}
    body = client.get("/v1/reports/predictions", params=params).json()
    expected = seeded.predictions.filter(
        (pl.col("round_ts") < seeded.start + dt.timedelta(hours=1)) & (pl.col("model_id") == "m-gamma") & (pl.col("status") == "FAILED")
    )
    assert expected.height > 0
    assert body["items"] == as_items(expected)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"status": "BOGUS"}, "status"),
        ({"status": "scored"}, "status"),
        ({"status": ""}, "status"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-13-01T00:00:00"}, "end"),
        ({"start": "2026-11-20T25:00:00Z"}, "start"),
        ({"start": "2026-11-21T00:00:00Z", "end": "2026-11-20T00:00:00Z"}, "start"),
        ({"start": "2026-11-20T03:00:00+02:00", "end": "2026-11-20T00:30:00Z"}, "start"),  # 01:00Z > 00:30Z
        ({"start": "0001-01-01T00:00:00+01:00"}, "start"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "abc"}, "offset"),
        ({"offset": 2**64}, "offset"),
    ],
)
def test_predictions_bad_parameters_are_422_with_a_reason(client: httpx.Client, params: dict, parameter: str) -> None:
    assert_422(client.get("/v1/reports/predictions", params=params), parameter)


@pytest.mark.parametrize(
    "params",
    [
        {"model_id": "x'; DROP TABLE predictions; --"},
        {"model_id": "\x00\xff\u2603", "subject": "%", "scope_key": "*"},
        {"offset": 2**62},
        {"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"},
        {"unknown": "ignored"},
    ],
)
def test_odd_but_valid_inputs_answer_200(client: httpx.Client, seeded: SeededLake, params: dict) -> None:
    response = client.get("/v1/reports/predictions", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] in (0, seeded.predictions.height)
    assert "offset" in params or len(body["items"]) == min(body["total"], 100)


# ---- checkpoints ------------------------------------------------------------------------------


def test_checkpoints_newest_period_first_with_event_status(client: httpx.Client) -> None:
    checkpoints = client.get("/reports/checkpoints").json()
    assert [c["checkpoint_id"] for c in checkpoints] == [f"CKP-{key}" for key in reversed(CHECKPOINT_KEYS)]
    newer, older = checkpoints
    assert (newer["status"], newer["tx_hash"], newer["model_count"]) == ("PENDING", None, 2)
    assert (older["status"], older["tx_hash"], older["model_count"]) == ("SUBMITTED", SUBMITTED_TX, 3)
    assert older["period_start"] == "2026-11-08T00:00:00Z" and older["period_end"] == "2026-11-15T00:00:00Z"
    assert older["ranking_key"] == "value"


@pytest.mark.parametrize(
    ("status", "ids"),
    [("SUBMITTED", [f"CKP-{CHECKPOINT_KEYS[0]}"]), ("PENDING", [f"CKP-{CHECKPOINT_KEYS[1]}"]), ("PAID", [])],
)
def test_checkpoints_status_filter(client: httpx.Client, status: str, ids: list[str]) -> None:
    body = client.get("/reports/checkpoints", params={"status": status}).json()
    assert [c["checkpoint_id"] for c in body] == ids
    assert all(c["status"] == status for c in body)


def test_checkpoints_bad_status_is_422(client: httpx.Client) -> None:
    assert_422(client.get("/reports/checkpoints", params={"status": "DONE"}), "status")


def test_emission_of_a_known_checkpoint(client: httpx.Client) -> None:
    cid = f"CKP-{CHECKPOINT_KEYS[0]}"
    emission = client.get(f"/reports/checkpoints/{cid}/emission").json()
    assert emission["checkpoint_id"] == cid and emission["status"] == "SUBMITTED"
    assert emission["crunch"] == "CrunchPubkey1111"
    assert [r["cruncher_index"] for r in emission["cruncher_rewards"]] == [m[3] for m in MODELS]
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) == FRAC64_MULTIPLIER
    assert emission["compute_provider_rewards"] == [{"provider": "ComputeProvider1", "reward_pct": FRAC64_MULTIPLIER}]
    assert emission["data_provider_rewards"] == []


@pytest.mark.parametrize("cid", ["CKP-2020-01-05", "nope", "CKP-2026-11-08'--"])
def test_emission_of_an_unknown_checkpoint_is_404(client: httpx.Client, cid: str) -> None:
    response = client.get(f"/reports/checkpoints/{cid}/emission")
    assert response.status_code == 404
    assert cid in response.json()["detail"]


def test_openapi_documents_every_route(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/healthz",
        "/timing-metrics",
        "/reports/leaderboard",
        "/reports/leaderboard/late",
        "/v1/reports/predictions",
        "/reports/checkpoints",
        "/reports/checkpoints/{checkpoint_id}/emission",
        "/reports/merkle/checkpoints/{checkpoint_id}",
        "/reports/merkle/proof",
        # issue 6: the rest of the reference engine's routes and the checkpoint lifecycle
        "/info",
        "/reports/models",
        "/reports/models/global",
        "/reports/models/params",
        "/reports/models/{model_id}/diversity",
        "/reports/diversity",
        "/reports/feeds",
        "/reports/snapshots",
        "/reports/ensemble/history",
        "/reports/checkpoints/rewards",
        "/reports/checkpoints/{checkpoint_id}",
        "/reports/checkpoints/{checkpoint_id}/confirm",
        "/reports/checkpoints/{checkpoint_id}/status",
        "/reports/checkpoints/{checkpoint_id}/emission/cli-format",
        "/reports/emissions/latest",
        # leaderboards per group and payout tables
        "/reports/leaderboard/ranks",
        "/reports/checkpoints/{checkpoint_id}/payouts",
        # the review gate: diff, approval, explanations
        "/reports/checkpoints/{checkpoint_id}/diff",
        "/reports/checkpoints/{checkpoint_id}/approve",
        "/reports/checkpoints/{checkpoint_id}/explain",
        "/reports/checkpoints/{checkpoint_id}/bundle",  # the audit bundle
        "/data/backfill/{table}",
        "/data/backfill/{table}/{partition_key}",
        "/reports/backfill",
        "/reports/backfill/feeds",
        "/reports/backfill/jobs",
        "/reports/backfill/jobs/{backfill_id}",
        # issue 15: the dashboard's routes, and the project's own shapes where they differ
        "/reports/predictions",
        "/reports/schema",
        "/reports/schema/leaderboard-columns",
        "/reports/schema/metrics-widgets",
        "/reports/models/metrics",
        "/reports/models/summary",
        "/reports/feeds/tail",
        "/reports/checkpoints/latest",
        "/reports/checkpoints/latest/prizes",
        "/reports/checkpoints/{checkpoint_id}/payload",
        "/reports/checkpoints/{checkpoint_id}/prizes",
        "/v1/reports/models/params",
        "/v1/reports/checkpoints",
        "/v1/reports/checkpoints/rewards",
        "/v1/reports/checkpoints/{checkpoint_id}/emission/cli-format",
        # issue 22: tournament rounds on uploaded data
        "/tournament/rounds/{round_id}/inference",
        "/tournament/rounds/{round_id}/score",
        "/tournament/rounds/{round_id}/status",
        "/tournament/rounds/{round_id}/checkpoint",
        "/tournament/rounds/{round_id}/checkpoint/status",
        "/tournament/rounds",
        "/tournament/rounds/scores",
        "/tournament/leaderboard",
    }
    parameters = {p["name"] for p in paths["/v1/reports/predictions"]["get"]["parameters"]}
    assert parameters == {"model_id", "subject", "scope_key", "status", "start", "end", "limit", "offset"}


# ---- interactive docs -------------------------------------------------------------------------


@pytest.mark.parametrize(("page", "assets"), [("/docs", {".js", ".css", ".png"}), ("/redoc", {".js", ".png"})])
def test_docs_pages_load_everything_from_the_app_itself(tmp_path, page, assets):
    """Offline, a page whose scripts come from a CDN is blank: every script, style sheet and icon
    the page references must be a path of this app, and served."""
    import re

    with serve(create_app(ApiSettings(home=tmp_path / "node"))) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        html = http.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        # And the browser may load nothing from elsewhere (tests/test_ui_browser.py renders them).
        assert html.headers["content-security-policy"].startswith("default-src 'self';")
        assert not re.search(r"(https?:)?//[\w.-]+\.\w+/", html.text.replace(base_url, "")), "an external URL in the page"
        referenced = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert {Path(url).suffix for url in referenced} == assets, referenced
        for url in referenced:
            assert url.startswith("/"), url
            answer = http.get(url)
            assert answer.status_code == 200 and len(answer.content) > 1000, url
        spec = re.search(r"(?:url: |spec-url=)['\"]([^'\"]+)['\"]", html.text)
        assert spec and http.get(spec.group(1)).json()["info"]["title"] == "coordinator-dagster report API"


# ---- settings ---------------------------------------------------------------------------------


def test_settings_come_from_the_environment_when_the_app_is_created(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COORDINATOR_HOME", str(tmp_path / "node"))
    monkeypatch.setenv("API_CORS_ORIGINS", "https://a.example, https://b.example,")
    app = create_app()
    assert app.state.settings == ApiSettings(home=tmp_path / "node", cors_origins=("https://a.example", "https://b.example"))
    with serve(app) as base_url:
        allowed = httpx.get(f"{base_url}/reports/leaderboard", headers={"Origin": "https://a.example"})
        other = httpx.get(f"{base_url}/reports/leaderboard", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://a.example"
    assert "access-control-allow-origin" not in other.headers


# ---- serving while partitions are rewritten ---------------------------------------------------


REWRITES = 12


# Reads after a rewrite that may still get the previous copy while the new one loads; a reader
# still stale after this many has lost the rewrite (the assertion below then names the version).
STALE_READS = 500


def test_serves_consistent_answers_while_partitions_are_rewritten(tmp_path) -> None:
    """Exactly REWRITES rewrites of an hour of predictions and of the leaderboard, each followed
    by fresh requests from both readers (which keep reading while the next rewrite runs): every
    answer is whole, and the leaderboard shows every version the writer wrote, in order.

    A read that begins just after a rewrite may still get the previous version while another
    request loads the new one (the API serves its previous copy rather than queue behind the
    load), so the writer waits, by counting reads, until the new version is served."""
    seeded = seed_lake(tmp_path / "home")
    expected_items = as_items(seeded.predictions)
    failures: list[str] = []
    versions_seen: list[int] = []
    stop = threading.Event()
    turns = ReadTurns(readers=2)

    def get(http: httpx.Client, path: str, **params) -> object:
        response = http.get(path, params=params)
        if response.status_code != 200:
            failures.append(f"{path}: {response.status_code} {response.text}")
            return None
        return response.json()

    def check_predictions(http: httpx.Client) -> None:
        body = get(http, "/v1/reports/predictions", limit=1000)
        if body is not None and (body["total"] != len(expected_items) or body["items"] != expected_items):
            failures.append(f"predictions: total {body['total']}, {len(body['items'])} items differ from the seed")

    def check_leaderboard(http: httpx.Client) -> None:
        entries = get(http, "/reports/leaderboard")
        if entries is None:
            return
        # Each rewrite shifts every value by one version: one answer must show one version.
        versions = {e["prediction_count"] - 100 * e["rank"] for e in entries}
        values = [e["ranking_value"] for e in entries]
        if [e["model_id"] for e in entries] != [m[0] for m in MODELS] or len(versions) != 1 or values != sorted(values, reverse=True):
            failures.append(f"leaderboard mixes versions or lost its order: {entries}")
        else:
            versions_seen.extend(versions)

    def reader(number: int, check, base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as http:
            while not stop.is_set():
                try:
                    check(http)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    failures.append(f"reader {number}: {exc!r}")
                turns.finished(number)

    with serve(create_app(ApiSettings(home=seeded.lake.home))) as base_url:
        threads = [
            threading.Thread(target=reader, args=(0, check_predictions, base_url)),
            threading.Thread(target=reader, args=(1, check_leaderboard, base_url)),
        ]
        for thread in threads:
            thread.start()
        try:
            for version in range(1, REWRITES + 1):
                rewrite_window(seeded, seeded.window_keys[version % len(seeded.window_keys)])
                seeded.lake.write("leaderboard", leaderboard_frame(version=version))
                turns.wait_for_fresh_reads()
                for _ in range(STALE_READS):
                    if versions_seen and versions_seen[-1] >= version:
                        break
                    turns.wait_for_fresh_reads(1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
    assert failures == []
    # Every read after a rewrite began once it was done, so each version was seen, none went back.
    assert sorted(set(versions_seen) - {0}) == list(range(1, REWRITES + 1))
    assert versions_seen == sorted(versions_seen)
    assert turns.count(0) >= 2 * REWRITES and turns.count(1) >= 2 * REWRITES

"""Contract test of the fields CrunchDAO's dashboard (coordinator-webapp `apps/starter`) reads,
against the real API under uvicorn on 127.0.0.1 over a seeded lake. The shaping rules' worked
examples are in tests/test_dashboard_shapes.py."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from tests.api_fixtures import CHECKPOINT_KEYS, MODELS, SEED_START, WINDOWS, seed_extras, seed_lake, serve

UTC = dt.timezone.utc
NAMES = {model_id: (name, cruncher, index) for model_id, name, cruncher, index in MODELS}
METRICS = ["ic", "ic_sharpe", "hit_rate", "max_drawdown", "model_correlation"]  # the default contract's
CHART_RANGE = {"start": "2026-11-19T00:00:00.000Z", "end": "2026-11-22T00:00:00.000Z"}


def js_date(value: str) -> dt.datetime:
    """What the dashboard's line chart does with an x value: append "Z", then parse."""
    return dt.datetime.fromisoformat(value + "Z")


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory):
    seeded = seed_lake(tmp_path_factory.mktemp("dashboard"))
    seed_extras(seeded.lake)
    with serve(create_app(ApiSettings(home=seeded.lake.home))) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


pytestmark = pytest.mark.process  # every test here starts a server


def is_number_or_null(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def test_leaderboard_rows_have_windows_metrics_names_ranking_and_status(http):
    rows = http.get("/reports/leaderboard").json()
    assert [r["model_id"] for r in rows] == ["m-alpha", "m-beta", "m-gamma"]
    for rank, row in enumerate(rows, start=1):
        assert row["rank"] == rank
        assert row["model_name"] == NAMES[row["model_id"]][0]
        assert row["cruncher_name"] == row["username"] == NAMES[row["model_id"]][1]
        for name in (*WINDOWS, *METRICS):
            assert is_number_or_null(row[name]), name
            assert row["score_metrics"][name] == row[name]
        assert row["score_recent"] == pytest.approx(0.5 - rank * 0.1)
        assert row["score_ranking"] == {"key": "score_recent", "value": row["score_recent"], "direction": "desc"}
        assert row["windows"]["score_recent"] == row["score_recent"]  # the project's shape stays
    # m-gamma left the manifest: its ring is off.
    assert [r["status"] for r in rows] == ["active", "active", "inactive"]
    # model_correlation is the mean over the first window's snapshots (0.95, 0.6, 0.1 per model).
    assert [r["model_correlation"] for r in rows] == pytest.approx([0.95, 0.6, 0.1])
    assert rows[2]["score_anchor"] is None


def test_models_carry_the_dashboard_names(http):
    rows = http.get("/reports/models").json()
    for row in rows:
        name, cruncher, index = NAMES[row["model_id"]]
        assert (row["model_name"], row["cruncher_name"], row["cruncher_id"]) == (name, cruncher, str(index))
        assert row["deployment_id"] == f"models/{row['model_id']}.py"


def test_schema_has_a_column_per_window_and_metric_and_widgets_on_this_api(http):
    schema = http.get("/reports/schema").json()
    assert schema["schema_version"] == "1"
    columns = http.get("/reports/schema/leaderboard-columns").json()
    widgets = http.get("/reports/schema/metrics-widgets").json()
    assert columns == schema["leaderboard_columns"] and widgets == schema["metrics_widgets"]
    assert [c["property"] for c in columns] == ["username", "model_id", *WINDOWS, *METRICS, "late_count", "late_score_mean"]
    assert {c["type"] for c in columns} == {"USERNAME", "PROJECT", "VALUE"}  # the webapp's column types
    assert columns[1]["nativeConfiguration"] == {"type": "model", "statusProperty": "status"}
    assert len({c["id"] for c in columns}) == len(columns)
    # The dashboard's own default widgets are ids 1–3: sharing one would replace ours on a fresh install.
    assert min(w["id"] for w in widgets) > 3 and len({w["id"] for w in widgets}) == len(widgets)
    paths = set(http.get("/openapi.json").json()["paths"])
    for widget in widgets:
        assert widget["type"] == "CHART"
        assert widget["endpointUrl"] in paths, widget["endpointUrl"]
        assert http.get(widget["endpointUrl"], params=CHART_RANGE).status_code == 200


def assert_chart_rows(rows: list[dict], models: set[str]) -> None:
    assert rows
    assert {r["model_id"] for r in rows} == models
    for row in rows:
        assert js_date(row["performed_at"]).tzinfo is not None  # parses after the chart's "Z"


def test_chart_routes_filter_by_project_ids_and_answer_flat_rows(http):
    two = {"projectIds": "m-alpha,m-beta", **CHART_RANGE}
    glob = http.get("/reports/models/global", params=two).json()
    assert_chart_rows(glob, {"m-alpha", "m-beta"})
    assert all(is_number_or_null(r[w]) for r in glob for w in WINDOWS)

    params = http.get("/reports/models/params", params=two).json()
    assert_chart_rows(params, {"m-alpha", "m-beta"})
    assert {(r["subject"], r["asset"], r["horizon"], r["param"]) for r in params} == {("BTC", "BTC", "1m", "btc-60s"), ("ETH", "ETH", "1m", "eth-60s")}
    first = next(r for r in params if r["model_id"] == "m-alpha" and r["scope_key"] == "btc-60s")
    assert first["performed_at"] == "2026-11-20T01:00:00"  # the first hour, known at its end
    assert all(is_number_or_null(first[w]) and first["score_metrics"][w] == first[w] for w in WINDOWS)

    metrics = http.get("/reports/models/metrics", params=two).json()
    assert_chart_rows(metrics, {"m-alpha", "m-beta"})
    assert len(metrics) == 2 * 3  # three hours of snapshots each
    assert {r["model_correlation"] for r in metrics if r["model_id"] == "m-alpha"} == {0.95}
    assert all(r["ic"] is None for r in metrics if r["performed_at"] == "2026-11-20T01:00:00")  # NaN → null

    summary = http.get("/reports/models/summary", params={"projectIds": "m-gamma", **CHART_RANGE}).json()
    assert [(r["model_id"], r["performed_at"]) for r in summary] == [("m-gamma", "2026-11-20T03:00:00")]
    assert http.get("/reports/models/global", params={"projectIds": "nobody"}).json() == []


def test_predictions_chart_streams_a_capped_array_with_a_next_link(http):
    params = {"projectIds": "m-gamma", **CHART_RANGE}
    whole = http.get("/reports/predictions", params=params)
    assert whole.headers["x-result-truncated"] == "false" and "link" not in whole.headers
    rows = whole.json()
    assert len(rows) == 3 * 4 * 2  # 3 hours × 4 rounds × 2 scopes
    assert [r["performed_at"] for r in rows] == sorted(r["performed_at"] for r in rows)
    for row in rows:
        assert set(row) >= {"model_id", "performed_at", "score_value", "score_failed", "score_failed_reason", "scope_key", "scope", "scored_at"}
        assert row["scope"]["subject"] == row["subject"]
        assert row["score_failed"] == (row["score_value"] is None)
    failed = [r for r in rows if r["status"] == "FAILED"]
    assert failed and all(r["score_failed_reason"] == "output is not a finite number" for r in failed)
    scored = [r for r in rows if r["status"] == "SCORED"]
    assert all(js_date(r["scored_at"]) == js_date(r["performed_at"]) + dt.timedelta(seconds=60) for r in scored)
    assert all(r["scored_at"] is None for r in rows if r["status"] == "PENDING")

    first = http.get("/reports/predictions", params={**params, "limit": 10})
    assert first.headers["x-result-limit"] == "10" and first.headers["x-result-truncated"] == "true"
    link = first.headers["link"]
    assert link.endswith('>; rel="next"') and "offset=10" in link
    second = http.get(link[1 : link.index(">")])
    assert first.json() + second.json() == rows[:20]
    # The paginated form stays available.
    page = http.get("/v1/reports/predictions", params={"model_id": "m-gamma", "limit": 5}).json()
    assert page["total"] == len(rows) and len(page["items"]) == 5


def test_feeds_and_tail(http):
    feeds = http.get("/reports/feeds").json()
    btc = next(f for f in feeds if f["subject"] == "BTC")
    assert btc["oldest_ts"] == "2026-11-20T00:00:00Z" and btc["newest_ts"] == "2026-11-20T02:59:00Z"
    assert btc["watermark_ts"] == btc["newest_ts"] and btc["watermark_updated_at"] is not None
    tail = http.get("/reports/feeds/tail", params={"source": "binance", "subject": "BTC", "kind": "candle", "granularity": "1m", "limit": 3}).json()
    assert [r["ts_event"] for r in tail] == ["2026-11-20T02:59:00Z", "2026-11-20T02:58:00Z", "2026-11-20T02:57:00Z"]
    assert tail[0]["values"] == {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0}
    assert tail[0]["meta"] == {} and tail[0]["ts_ingested"] is not None
    assert http.get("/reports/feeds/tail", params={"limit": 201}).status_code == 422
    assert http.get("/reports/feeds/tail", params={"limit": 0}).status_code == 422


def test_checkpoints_with_meta_latest_payload_and_prizes(http):
    rows = http.get("/reports/checkpoints").json()
    assert [r["id"] for r in rows] == [f"CKP-{k}" for k in reversed(CHECKPOINT_KEYS)]
    old = rows[1]
    assert old["status"] == "SUBMITTED" and old["tx_hash"] and old["submitted_at"] == SEED_START.isoformat().replace("+00:00", "Z")
    assert old["meta"]["model_count"] == 3 and isinstance(old["meta"]["snapshot_count"], int)
    assert [(e["model_id"], e["model_name"], e["rank"]) for e in old["meta"]["ranking"]] == [
        ("m-alpha", "Alpha", 1), ("m-beta", "Beta", 2), ("m-gamma", "Gamma", 3)
    ]
    assert old["entries"][0]["crunch"] == "CrunchPubkey1111" and old["entries"][0]["cruncher_rewards"]
    assert old["created_at"] == old["period_end"]
    latest = http.get("/reports/checkpoints/latest").json()
    assert latest == rows[0]
    payload = http.get(f"/reports/checkpoints/{old['id']}/payload").json()
    assert payload["entries"] == old["entries"] and payload["period_end"] == old["period_end"]
    # /latest/prizes is its own route, not the prizes of a checkpoint called "latest".
    latest_prizes = http.get("/reports/checkpoints/latest/prizes", params={"total_prize": 1001}).json()
    assert latest_prizes["checkpoint_id"] == latest["id"] and latest_prizes["total_prize"] == 1001
    assert sum(p["prize"] for p in latest_prizes["prizes"]) == 1001
    prizes = http.get(f"/reports/checkpoints/{old['id']}/prizes", params={"total_prize": 1000}).json()
    end = int(dt.datetime.fromisoformat(old["period_end"]).timestamp())
    rewards = {r["cruncher_index"]: r["reward_pct"] for r in old["entries"][0]["cruncher_rewards"]}
    assert prizes == [
        {"prizeId": f"{old['id']}-{m}", "timestamp": end, "model": m, "prize": rewards[NAMES[m][2]] * 1000 // 1_000_000_000}
        for m in ("m-alpha", "m-beta", "m-gamma")
    ]
    assert http.get("/reports/checkpoints/CKP-nope/prizes").status_code == 404


def test_rewards_in_percent_diversity_score_and_cli_format(http):
    rewards = http.get("/reports/checkpoints/rewards").json()
    assert all(js_date(r["period_end"]) for r in rewards)
    for r in rewards:
        assert r["reward_pct"] == r["reward_frac64"] / 10_000_000
        assert r["model_name"] == NAMES[r["model_id"]][0]
    assert sum(r["reward_pct"] for r in rewards if r["checkpoint_id"] == f"CKP-{CHECKPOINT_KEYS[0]}") == 100.0
    assert http.get("/v1/reports/checkpoints/rewards").json()[0]["reward_pct"] > 100  # frac64 stays at /v1

    diversity = {r["model_id"]: r["diversity_score"] for r in http.get("/reports/diversity").json()}
    assert diversity == {"m-alpha": 0.05, "m-beta": 0.4, "m-gamma": 0.9}

    old = f"CKP-{CHECKPOINT_KEYS[0]}"
    cli = http.get(f"/reports/checkpoints/{old}/emission/cli-format").json()
    assert set(cli) == {"crunch", "crunchEmission", "computeProvider", "dataProvider"}
    assert cli["crunch"] == "CrunchPubkey1111"
    assert set(cli["crunchEmission"]) == {"m-alpha", "m-beta", "m-gamma"}
    assert sum(cli["crunchEmission"].values()) == pytest.approx(100.0)
    assert cli["computeProvider"] == {"ComputeProvider1": 100.0}
    assert "prizes" in http.get(f"/v1/reports/checkpoints/{old}/emission/cli-format").json()  # the project's form


def test_json_bodies_have_no_non_finite_numbers(http):
    for path in ("/reports/leaderboard", "/reports/models/metrics", "/reports/predictions"):
        json.loads(http.get(path, params=CHART_RANGE if path != "/reports/leaderboard" else None).text, parse_constant=pytest.fail)

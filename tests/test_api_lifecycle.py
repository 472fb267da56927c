"""The checkpoint lifecycle writes, auth tiers, custom routers and the report routes added by
issue 6, against a real uvicorn server over a lake seeded in tmp_path."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import sys
import textwrap

import httpx
import polars as pl
import pytest

from api.app import create_app
from api.extensions import CustomRouteError
from api.settings import ApiSettings
from api.solana import b58decode, b58encode, signature_error
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from tests.api_fixtures import CHECKPOINT_KEYS, MODELS, SUBMITTED_TX, seed_extras, seed_lake, serve

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

OLD, NEW = (f"CKP-{key}" for key in CHECKPOINT_KEYS)  # OLD is SUBMITTED by the seed, NEW is PENDING
SIG_A = b58encode(bytes(range(1, 65)))
SIG_B = b58encode(bytes(range(2, 66)))
KEY = "s3cret-key"


def assert_4xx(response: httpx.Response, status: int, text: str = "") -> None:
    assert response.status_code == status, response.text
    assert text in response.text


@pytest.fixture(scope="module")
def reads(tmp_path_factory):
    seeded = seed_lake(tmp_path_factory.mktemp("reads"))
    seed_extras(seeded.lake)
    with serve(create_app(ApiSettings(home=seeded.lake.home))) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield seeded, http


@pytest.fixture
def writes(tmp_path):
    """A fresh lake per test: the lifecycle tests append events."""
    seeded = seed_lake(tmp_path / "home")
    with serve(create_app(ApiSettings(home=seeded.lake.home))) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield seeded, http


# ---- solana signatures ------------------------------------------------------------------------


def test_base58_round_trip_and_signature_rules() -> None:
    for raw in (bytes(64), b"\x00\x00" + bytes(range(62)), bytes(range(1, 65)), b"\xff" * 64):
        assert b58decode(b58encode(raw)) == raw
        assert signature_error(b58encode(raw)) is None
    assert "0" in signature_error("0" * 87)  # '0', 'O', 'I', 'l' are not base58
    assert "63 bytes" in signature_error(b58encode(b"\x01" * 63))
    assert "65 bytes" in signature_error(b58encode(b"\x01" * 65)) or "characters" in signature_error(b58encode(b"\x01" * 65))
    assert signature_error("") is not None


# ---- lifecycle ------------------------------------------------------------------------------


def test_confirm_moves_pending_to_submitted_and_is_recorded(writes) -> None:
    seeded, http = writes
    response = http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG_A})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["tx_hash"]) == ("SUBMITTED", SIG_A)
    assert [(e["status"], e["tx_hash"]) for e in body["history"]] == [("SUBMITTED", SIG_A)]
    assert body["history"][0]["caller"] == "anonymous@127.0.0.1"
    assert http.get("/reports/checkpoints", params={"status": "SUBMITTED"}).json()[0]["checkpoint_id"] == NEW
    # Stored as an appended event, read back through the lake itself.
    events = seeded.lake.read_all("checkpoint_events").filter(pl.col("checkpoint_id") == NEW)
    assert events.select("status", "tx_hash").rows() == [("SUBMITTED", SIG_A)]


def test_confirm_is_idempotent_for_the_same_hash_and_409_for_another(writes) -> None:
    seeded, http = writes
    assert http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG_A}).status_code == 200
    again = http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG_A})
    assert again.status_code == 200 and len(again.json()["history"]) == 1
    assert_4xx(http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG_B}), 409, SIG_A)
    # The seeded SUBMITTED checkpoint has its own hash.
    assert_4xx(http.post(f"/reports/checkpoints/{OLD}/confirm", json={"tx_hash": SIG_A}), 409, SUBMITTED_TX)
    assert seeded.lake.read_all("checkpoint_events").height == 2


def test_concurrent_confirms_append_exactly_one_event(writes) -> None:
    seeded, http = writes

    def confirm(sig: str) -> int:
        with httpx.Client(base_url=str(http.base_url), timeout=30) as client:
            return client.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": sig}).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        same = list(pool.map(confirm, [SIG_A] * 16))
    assert same == [200] * 16
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        other = list(pool.map(confirm, [SIG_B] * 8))
    assert other == [409] * 8
    events = seeded.lake.read_all("checkpoint_events").filter(pl.col("checkpoint_id") == NEW)
    assert events.height == 1


@pytest.mark.parametrize(
    ("tx_hash", "reason"),
    [
        ("5xTxHashOfTheSubmittedCheckpoint", "base58"),  # 'O' is not base58
        ("5xTxHashfTheSubmittedCheckpint", "64 bytes"),
        ("0" * 88, "base58"),
        (b58encode(b"\x07" * 32), "64 bytes"),
        ("", "at least 1"),
        ("1" * 89, "88"),
    ],
)
def test_confirm_rejects_what_is_not_a_solana_signature(writes, tx_hash: str, reason: str) -> None:
    _, http = writes
    assert_4xx(http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": tx_hash}), 422, reason)


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"json": {"tx_hash": SIG_A, "extra": 1}}, 422, "extra"),
        ({"json": {}}, 422, "tx_hash"),
        ({"json": {"tx_hash": 12}}, 422, "tx_hash"),
        ({"content": b"not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
        ({"json": {"tx_hash": SIG_A}, "params": {"force": "1"}}, 422, "force"),
        ({"json": {"tx_hash": SIG_A + "x" * 20_000}}, 413, "larger than"),
    ],
)
def test_confirm_strict_input(writes, kwargs: dict, status: int, reason: str) -> None:
    _, http = writes
    assert_4xx(http.post(f"/reports/checkpoints/{NEW}/confirm", **kwargs), status, reason)


def test_oversized_chunked_body_is_413(writes) -> None:
    _, http = writes

    def body():
        for _ in range(40):
            yield b"x" * 1024

    assert_4xx(http.post(f"/reports/checkpoints/{NEW}/confirm", content=body(), headers={"content-type": "application/json"}), 413, "larger")


def test_unknown_checkpoint_writes_are_404(writes) -> None:
    _, http = writes
    assert_4xx(http.post("/reports/checkpoints/CKP-2001-01-07/confirm", json={"tx_hash": SIG_A}), 404, "CKP-2001-01-07")
    assert_4xx(http.patch("/reports/checkpoints/CKP-2001-01-07/status", json={"status": "SUBMITTED"}), 404, "CKP-2001-01-07")
    assert_4xx(http.get("/reports/checkpoints/CKP-2001-01-07"), 404, "CKP-2001-01-07")


def test_status_walks_forward_one_step_at_a_time(writes) -> None:
    seeded, http = writes
    path = f"/reports/checkpoints/{NEW}/status"
    assert_4xx(http.patch(path, json={"status": "CLAIMABLE"}), 409, "skip")
    assert_4xx(http.patch(path, json={"status": "PAID"}), 409, "skip")
    assert http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG_A}).status_code == 200
    assert_4xx(http.patch(path, json={"status": "PENDING"}), 409, "back")
    assert_4xx(http.patch(path, json={"status": "PAID"}), 409, "CLAIMABLE")
    claimable = http.patch(path, json={"status": "CLAIMABLE"})
    assert claimable.status_code == 200 and claimable.json()["status"] == "CLAIMABLE"
    assert claimable.json()["tx_hash"] == SIG_A  # the hash is carried by every later event
    assert http.patch(path, json={"status": "CLAIMABLE"}).status_code == 200  # already there: no new event
    assert_4xx(http.patch(path, json={"status": "SUBMITTED"}), 409, "back")
    paid = http.patch(path, json={"status": "PAID"}).json()
    assert [e["status"] for e in paid["history"]] == ["SUBMITTED", "CLAIMABLE", "PAID"]
    times = [e["event_at"] for e in paid["history"]]
    assert times == sorted(times) and len(set(times)) == 3
    assert_4xx(http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG_B}), 409, "")
    assert_4xx(http.patch(path, json={"status": "CLAIMABLE"}), 409, "back")
    assert http.get(f"/reports/checkpoints/{NEW}/emission").json()["status"] == "PAID"
    assert seeded.lake.read_all("checkpoint_events").filter(pl.col("checkpoint_id") == NEW).height == 3


def test_status_patch_to_submitted_then_confirm_records_the_hash(writes) -> None:
    _, http = writes
    assert http.patch(f"/reports/checkpoints/{NEW}/status", json={"status": "SUBMITTED"}).json()["tx_hash"] is None
    confirmed = http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG_A}).json()
    assert (confirmed["status"], confirmed["tx_hash"], len(confirmed["history"])) == ("SUBMITTED", SIG_A, 2)


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"status": "DONE"}, 422, "status"),
        ({"status": "submitted"}, 422, "status"),
        ({"status": "SUBMITTED", "tx_hash": "x"}, 422, "tx_hash"),
        ({}, 422, "status"),
        ([], 422, ""),
    ],
)
def test_status_strict_input(writes, body, status: int, reason: str) -> None:
    _, http = writes
    assert_4xx(http.patch(f"/reports/checkpoints/{NEW}/status", json=body), status, reason)


def test_a_first_event_on_an_empty_event_table_is_visible(tmp_path) -> None:
    seeded = seed_lake(tmp_path / "home")
    for path in seeded.lake.files("checkpoint_events"):
        path.unlink()
    with serve(create_app(ApiSettings(home=seeded.lake.home))) as base_url, httpx.Client(base_url=base_url) as http:
        assert http.get(f"/reports/checkpoints/{OLD}").json()["history"] == []
        body = http.post(f"/reports/checkpoints/{OLD}/confirm", json={"tx_hash": SIG_A}).json()
        assert body["status"] == "SUBMITTED" and len(body["history"]) == 1


# ---- checkpoint reads -------------------------------------------------------------------------


def test_checkpoint_detail_history_cli_format_latest_and_rewards(reads) -> None:
    _, http = reads
    detail = http.get(f"/reports/checkpoints/{OLD}").json()
    assert detail["status"] == "SUBMITTED" and detail["history"][0]["tx_hash"] == SUBMITTED_TX
    assert [e["model_id"] for e in detail["entries"]] == [m[0] for m in MODELS]
    cli = http.get(f"/v1/reports/checkpoints/{OLD}/emission/cli-format").json()
    assert cli["total_reward_pct"] == FRAC64_MULTIPLIER and cli["crunch"] == "CrunchPubkey1111"
    assert [p["cruncher_index"] for p in cli["prizes"]] == [m[3] for m in MODELS]
    assert sum(p["percent"] for p in cli["prizes"]) == pytest.approx(100)
    latest = http.get("/reports/emissions/latest").json()
    assert latest["checkpoint_id"] == NEW and [r["reward_pct"] for r in latest["cruncher_rewards"]] == [625_000_000, 375_000_000]
    rewards = http.get("/v1/reports/checkpoints/rewards").json()
    assert [(r["checkpoint_id"], r["model_id"]) for r in rewards] == [(NEW, "m-alpha"), (NEW, "m-beta"), (OLD, "m-alpha"), (OLD, "m-beta"), (OLD, "m-gamma")]
    assert [r["reward_pct"] for r in http.get("/v1/reports/checkpoints/rewards", params={"model_id": "m-gamma"}).json()] == [250_000_000]
    assert len(http.get("/v1/reports/checkpoints/rewards", params={"status": "SUBMITTED"}).json()) == 3
    assert len(http.get("/v1/reports/checkpoints/rewards", params={"cruncher_index": 3}).json()) == 2
    assert_4xx(http.get("/v1/reports/checkpoints/rewards", params={"cruncher_index": -1}), 422, "cruncher_index")
    assert_4xx(http.get("/v1/reports/checkpoints/nope/emission/cli-format"), 404, "nope")


def test_latest_emission_without_checkpoints_is_404(tmp_path) -> None:
    with serve(create_app(ApiSettings(home=tmp_path / "empty"))) as base_url:
        assert_4xx(httpx.get(f"{base_url}/reports/emissions/latest"), 404, "no checkpoint")


# ---- other reads ------------------------------------------------------------------------------


def test_models_global_params_and_diversity(reads) -> None:
    _, http = reads
    models = http.get("/reports/models").json()
    assert [(m["model_id"], m["cruncher_index"], m["active"]) for m in models] == [("m-alpha", 3, True), ("m-beta", 7, True), ("m-gamma", 11, False)]
    assert [m["model_id"] for m in http.get("/reports/models", params={"active": "false"}).json()] == ["m-gamma"]
    glob = http.get("/reports/models/global").json()
    assert [(m["model_id"], m["rank"], m["snapshot_count"], m["prediction_count"]) for m in glob][:3] == [
        ("m-alpha", 1, 3, 24), ("m-beta", 2, 3, 24), ("m-gamma", 3, 3, 24)
    ]
    assert glob[0]["windows"]["score_recent"] == pytest.approx(0.4)
    params = http.get("/v1/reports/models/params").json()
    assert params[0]["scope_key"] == "btc-60s" and params[0]["prediction_interval_seconds"] == 60
    alpha = http.get("/reports/models/m-alpha/diversity").json()
    assert alpha["model_correlation"] == pytest.approx(0.95) and "near-duplicate" in alpha["guidance"]
    gamma = http.get("/reports/models/m-gamma/diversity").json()
    assert gamma["model_correlation"] == pytest.approx(0.1) and "diverse" in gamma["guidance"]
    ranged = http.get("/reports/models/m-alpha/diversity", params={"start": "2026-11-21T00:00:00Z"}).json()
    assert ranged["snapshot_count"] == 0 and ranged["model_correlation"] is None
    assert_4xx(http.get("/reports/models/nobody/diversity"), 404, "nobody")
    assert [d["model_id"] for d in http.get("/reports/diversity").json()] == [m[0] for m in MODELS]
    assert_4xx(http.get("/reports/diversity", params={"start": "soon"}), 422, "start")


def test_feeds_snapshots_and_ensemble_history(reads) -> None:
    _, http = reads
    feeds = http.get("/reports/feeds").json()
    assert [(f["subject"], f["record_count"], f["first_ts"], f["last_ts"]) for f in feeds] == [
        ("BTC", 180, "2026-11-20T00:00:00Z", "2026-11-20T02:59:00Z"),
        ("ETH", 60, "2026-11-20T00:00:00Z", "2026-11-20T00:59:00Z"),
    ]
    assert http.get("/reports/feeds", params={"subject": "DOGE"}).json() == []
    page = http.get("/reports/snapshots", params={"limit": 4}).json()
    assert page["total"] == 9 and len(page["items"]) == 4
    assert page["items"][0]["period_start"] == "2026-11-20T02:00:00Z" and page["items"][0]["result_summary"]["model_correlation"] == 0.95
    oldest = http.get("/reports/snapshots", params={"model_id": "m-alpha", "end": "2026-11-20T01:00:00Z"}).json()
    assert oldest["total"] == 1 and oldest["items"][0]["result_summary"]["ic"] is None  # NaN is null in JSON
    assert_4xx(http.get("/reports/snapshots", params={"limit": 5000}), 422, "limit")
    history = http.get("/reports/ensemble/history").json()
    assert history["total"] == 3 and {i["model_id"] for i in history["items"]} == {"__ensemble_main__"}
    assert [i["as_of"] for i in history["items"]] == ["2026-11-20T02:30:00Z", "2026-11-20T01:30:00Z", "2026-11-20T00:30:00Z"]


def test_info_and_data_downloads(reads) -> None:
    seeded, http = reads
    info = http.get("/info").json()
    assert info["auth"] == {"admin_key_required": False, "read_key_required": False}
    assert info["contract"]["ranking_key"] == "score_recent" and info["lake"] == str(seeded.lake.root)
    listing = http.get("/data/backfill/predictions").json()
    assert listing["total"] == 3 and listing["items"][0]["partition_key"] == "2026-11-20-02:00"
    download = http.get(listing["items"][0]["url"])
    assert download.status_code == 200 and download.headers["content-type"] == "application/vnd.apache.parquet"
    assert download.content == seeded.lake.partition_path("predictions", "2026-11-20-02:00").read_bytes()
    assert_4xx(http.get("/data/backfill/predictions/2026-11-19-02:00"), 404, "no predictions partition")
    assert_4xx(http.get("/data/backfill/checkpoints/2026-11-20-02:00"), 422, "table")
    assert_4xx(http.get("/data/backfill/predictions/2026-11-20-02:30"), 422, "partition_key")
    assert_4xx(http.get("/data/backfill/predictions/2026-13-20-02:00"), 422, "not a valid hour")
    assert_4xx(http.get("/data/backfill/predictions/..%2F..%2Fetc"), 404, "")  # never a path on disk


# ---- auth tiers -------------------------------------------------------------------------------

PUBLIC = ["/healthz", "/info", "/reports/leaderboard", "/reports/models", "/reports/feeds", "/reports/checkpoints", "/docs", "/openapi.json"]
READ = ["/v1/reports/predictions", "/reports/predictions", "/reports/snapshots", "/data/backfill/predictions"]


@pytest.fixture(scope="module", params=[False, True], ids=["key", "key+read_auth"])
def keyed(request, tmp_path_factory):
    seeded = seed_lake(tmp_path_factory.mktemp("auth"))
    settings = ApiSettings(home=seeded.lake.home, api_key=KEY, read_auth=request.param)
    with serve(create_app(settings)) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield request.param, http


def test_public_routes_need_no_key(keyed) -> None:
    _, http = keyed
    for path in PUBLIC:
        assert http.get(path).status_code == 200, path


def test_read_routes_need_the_key_only_with_read_auth(keyed) -> None:
    read_auth, http = keyed
    for path in READ:
        anonymous = http.get(path)
        if read_auth:
            assert_4xx(anonymous, 401, "API key")
            assert http.get(path, headers={"X-API-Key": KEY}).status_code == 200
            assert_4xx(http.get(path, headers={"X-API-Key": "wrong"}), 401, "not valid")
        else:
            assert anonymous.status_code == 200, path


@pytest.mark.parametrize(
    "auth",
    [{"headers": {"X-API-Key": KEY}}, {"headers": {"Authorization": f"Bearer {KEY}"}}, {"params": {"api_key": KEY}}],
    ids=["header", "bearer", "query"],
)
def test_admin_writes_need_the_key_in_any_of_three_places(keyed, auth: dict) -> None:
    _, http = keyed
    path = f"/reports/checkpoints/{OLD}/status"
    assert_4xx(http.patch(path, json={"status": "SUBMITTED"}), 401, "admin API key")
    assert_4xx(http.patch(path, json={"status": "SUBMITTED"}, headers={"X-API-Key": KEY + "x"}), 401, "not valid")
    assert_4xx(http.patch(path, json={"status": "SUBMITTED"}, headers={"Authorization": "Bearer nope"}), 401, "not valid")
    response = http.patch(path, json={"status": "SUBMITTED"}, **auth)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "SUBMITTED"
    assert_4xx(http.post(f"/reports/checkpoints/{OLD}/confirm", json={"tx_hash": SIG_A}), 401, "")


def test_the_caller_is_recorded(tmp_path) -> None:
    seeded = seed_lake(tmp_path / "home")
    with serve(create_app(ApiSettings(home=seeded.lake.home, api_key=KEY))) as base_url:
        body = httpx.post(f"{base_url}/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG_A}, headers={"X-API-Key": KEY}).json()
    assert body["history"][-1]["caller"] == "api-key@127.0.0.1"


def test_auth_settings_from_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COORDINATOR_HOME", str(tmp_path))
    monkeypatch.setenv("API_KEY", KEY)
    monkeypatch.setenv("API_READ_AUTH", "true")
    settings = ApiSettings.from_env()
    assert settings.api_key.get_secret_value() == KEY and settings.read_auth is True
    assert KEY not in repr(settings)
    monkeypatch.setenv("API_READ_AUTH", "perhaps")
    with pytest.raises(ValueError, match="API_READ_AUTH"):
        ApiSettings.from_env()


# ---- custom routers ---------------------------------------------------------------------------

ROUTER_FILE = """
from fastapi import APIRouter
router = APIRouter(prefix="/custom/{name}")

@router.get("/hello")
def hello() -> dict:
    return {{"hello": "{name}"}}
"""


def test_custom_routers_from_a_folder_and_api_routes_are_admin_by_default(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "ops.py").write_text(textwrap.dedent(ROUTER_FILE.format(name="ops")))
    (folder / "open.py").write_text(textwrap.dedent(ROUTER_FILE.format(name="open")) + '\nAUTH_TIER = "public"\n')
    (folder / "_helper.py").write_text("raise RuntimeError('never imported')\n")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "extra_routes.py").write_text(textwrap.dedent(ROUTER_FILE.format(name="extra")).replace("router =", "routes =").replace("@router", "@routes"))
    monkeypatch.syspath_prepend(str(package))
    settings = ApiSettings(home=tmp_path / "home", api_key=KEY, custom_dir=folder, routes=("extra_routes:routes",))
    app = create_app(settings)
    with serve(app) as base_url, httpx.Client(base_url=base_url) as http:
        for name in ("ops", "extra"):
            assert_4xx(http.get(f"/custom/{name}/hello"), 401, "admin")
            assert http.get(f"/custom/{name}/hello", headers={"X-API-Key": KEY}).json() == {"hello": name}
        assert http.get("/custom/open/hello").json() == {"hello": "open"}
        assert len(http.get("/info").json()["custom_routes"]) == 3
    sys.modules.pop("extra_routes", None)


@pytest.mark.parametrize(
    ("content", "spec", "reason"),
    [
        ("x = 1\n", (), "APIRouter"),
        ("import nothing_here_at_all\n", (), "ModuleNotFoundError"),
        ("from fastapi import APIRouter\nrouter = APIRouter()\nAUTH_TIER = 'secret'\n", (), "AUTH_TIER"),
        (None, ("no_such_module_xyz:router",), "no_such_module_xyz"),
        (None, ("justamodule",), "module:attribute"),
    ],
)
def test_bad_custom_routers_fail_at_start_up(tmp_path, content, spec, reason) -> None:
    folder = tmp_path / "custom"
    folder.mkdir()
    if content:
        (folder / "bad.py").write_text(content)
    with pytest.raises(CustomRouteError, match=reason):
        create_app(ApiSettings(home=tmp_path / "home", custom_dir=folder, routes=spec))


def test_cors_allows_the_write_methods(tmp_path) -> None:
    app = create_app(ApiSettings(home=tmp_path, cors_origins=("https://ops.example",)))
    with serve(app) as base_url:
        preflight = httpx.options(
            f"{base_url}/reports/checkpoints/{NEW}/status",
            headers={"Origin": "https://ops.example", "Access-Control-Request-Method": "PATCH"},
        )
    assert preflight.status_code == 200 and "PATCH" in preflight.headers["access-control-allow-methods"]


def test_event_times_are_utc(writes) -> None:
    _, http = writes
    body = http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG_A}).json()
    at = dt.datetime.fromisoformat(body["history"][0]["event_at"].replace("Z", "+00:00"))
    assert at.utcoffset() == dt.timedelta(0) and abs(dt.datetime.now(dt.timezone.utc) - at) < dt.timedelta(minutes=1)


# ---- the response cache follows the lake --------------------------------------------------------


def test_cached_answers_follow_rewrites_and_writes(tmp_path) -> None:
    from api.cache import IDENTITY_TTL
    from tests.api_fixtures import leaderboard_frame

    seeded = seed_lake(tmp_path / "home")
    now = [0.0]  # the cache's clock: it moves only when this test moves it
    app = create_app(ApiSettings(home=seeded.lake.home), cache_clock=lambda: now[0])
    with serve(app) as base_url, httpx.Client(base_url=base_url) as http:
        first = http.get("/reports/leaderboard").json()
        assert http.get("/reports/leaderboard").json() == first  # served from the cache
        seeded.lake.write("leaderboard", leaderboard_frame(version=7))
        assert [e["prediction_count"] for e in http.get("/reports/leaderboard").json()] == [107, 207, 307]
        # Read-your-write on the checkpoint routes: no lag at all.
        before = http.get("/reports/checkpoints").json()
        assert before[0]["status"] == "PENDING"
        http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG_A}).raise_for_status()
        assert http.get("/reports/checkpoints").json()[0]["status"] == "SUBMITTED"
        assert http.get("/reports/emissions/latest").json()["status"] == "SUBMITTED"
        # Predictions: a rewritten hour may be answered from the cache for up to the identity TTL,
        # and is answered afresh once it has passed.
        page = http.get("/v1/reports/predictions", params={"limit": 5}).json()
        key = seeded.window_keys[-1]
        hour = seeded.raw_predictions.filter(pl.col("round_ts") >= seeded.end - dt.timedelta(hours=1))
        seeded.lake.write("predictions", hour.head(4), key)
        now[0] += IDENTITY_TTL / 2
        assert http.get("/v1/reports/predictions", params={"limit": 5}).json() == page
        now[0] += IDENTITY_TTL
        after = http.get("/v1/reports/predictions", params={"limit": 5}).json()
        assert after["total"] == page["total"] - hour.height + 4
        assert after["items"] != page["items"]

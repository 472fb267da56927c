"""The report API under hostile input (issue 15, found by fuzzing and by hand): every case here
answered a 500, leaked an operator detail or touched the lake before it was fixed. Real uvicorn
servers on loopback over lakes seeded in tmp_path; the access-log test runs `coordinator api`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.middleware import redact_query
from api.settings import ApiSettings
from tests.api_fixtures import CHECKPOINT_KEYS, seed_extras, seed_lake, serve
from tests.process_support import free_port, wait_for

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

OLD, NEW = (f"CKP-{key}" for key in CHECKPOINT_KEYS)  # OLD is SUBMITTED by the seed, NEW is PENDING
KEY = "hardening-key"
ADMIN = {"X-API-Key": KEY}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory) -> Path:
    seeded = seed_lake(tmp_path_factory.mktemp("hardening"))
    seed_extras(seeded.lake)
    return seeded.lake.home


@pytest.fixture(scope="module")
def keyed(lake_home):
    """A node with a key and API_READ_AUTH=true."""
    app = create_app(ApiSettings(home=lake_home, api_key=KEY, read_auth=True))
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield http


@pytest.fixture
def open_node(tmp_path):
    seeded = seed_lake(tmp_path / "home")
    with serve(create_app(ApiSettings(home=seeded.lake.home))) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield seeded.lake, http


def json_body(text: str) -> dict[str, str]:
    return {"content": text.encode(), "headers": {"content-type": "application/json", **ADMIN}}


# ---- non-finite numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", f"/reports/checkpoints/{NEW}/status", '{"status": 1e999}'),
        ("PATCH", f"/reports/checkpoints/{NEW}/status", '{"status": -1e999}'),
        ("PATCH", f"/reports/checkpoints/{NEW}/status", '{"status": NaN}'),
        ("PATCH", f"/reports/checkpoints/{NEW}/status", '{"status": "SUBMITTED", "extra": Infinity}'),
        ("POST", f"/reports/checkpoints/{NEW}/confirm", '{"tx_hash": 1e999}'),
        ("POST", f"/reports/checkpoints/{NEW}/confirm", '[1e999, -Infinity]'),
        ("POST", "/reports/backfill", '{"source": "binance", "start": 1e999}'),
    ],
)
def test_non_finite_numbers_in_a_write_body_are_422_with_a_readable_reason(keyed, method, path, body) -> None:
    response = keyed.request(method, path, **json_body(body))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]  # strict JSON: the body parses
    assert detail and all("msg" in error for error in detail)
    assert "Infinity" not in response.text and "NaN" not in response.text


# ---- checkpoint ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["CKP%00x", "CKP-%01", "x" * 65, "%7F"])
def test_control_characters_and_over_long_ids_are_422(keyed, bad_id: str) -> None:
    for method, path, kwargs in (
        ("GET", f"/reports/checkpoints/{bad_id}", {}),
        ("GET", f"/reports/checkpoints/{bad_id}/emission", {}),
        ("GET", f"/reports/merkle/checkpoints/{bad_id}", {}),
        ("PATCH", f"/reports/checkpoints/{bad_id}/status", {"json": {"status": "SUBMITTED"}, "headers": ADMIN}),
        ("POST", f"/reports/checkpoints/{bad_id}/confirm", {"json": {"tx_hash": "1" * 88}, "headers": ADMIN}),
    ):
        response = keyed.request(method, path, **kwargs)
        assert response.status_code == 422, (method, path, response.text)
        assert "checkpoint_id" in response.text
    proof = keyed.get("/reports/merkle/proof", params={"checkpoint_id": "CKP\x00", "model_id": "m", "period_start": "2026-11-16T00:00"}, headers=ADMIN)
    assert proof.status_code == 422 and "checkpoint_id" in proof.text


def test_writes_to_unknown_checkpoints_leave_no_lock_file(open_node) -> None:
    lake, http = open_node
    locks = lake.root / ".locks" / "checkpoint_events"
    # 64 characters of 4-byte UTF-8 pass the length rule but would be a 256-byte file name.
    for unknown in ("CKP-2001-01-07", "\U0001f600" * 64, "CKP-2026-11-08'--", "a:b"):
        for method, suffix, body in (("PATCH", "status", {"status": "SUBMITTED"}), ("POST", "confirm", {"tx_hash": "1" * 88})):
            response = http.request(method, f"/reports/checkpoints/{unknown}/{suffix}", json=body)
            assert response.status_code in (404, 422), (unknown, response.text)
            if response.status_code == 404:
                assert "no checkpoint" in response.json()["detail"]
    assert not locks.exists() or list(locks.iterdir()) == []
    # A known checkpoint still takes its lock and moves.
    assert http.patch(f"/reports/checkpoints/{NEW}/status", json={"status": "SUBMITTED"}).status_code == 200
    assert [p.name for p in locks.iterdir()] == [f"{NEW}.lock"]


# ---- auth order and tiers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("PATCH", f"/reports/checkpoints/{NEW}/status", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("PATCH", f"/reports/checkpoints/{NEW}/status", {"json": {"status": 1e300, "extra": [1, 2]}}),
        ("POST", f"/reports/checkpoints/{NEW}/confirm", {"json": {}}),
        ("POST", "/reports/checkpoints/%00/confirm", {"json": {}}),
        ("POST", "/reports/backfill", {"json": {"nonsense": True}}),
        ("GET", "/reports/backfill/jobs", {"params": {"limit": "-1"}}),
        ("GET", "/reports/predictions", {"params": {"limit": "0"}}),
        ("GET", "/reports/merkle/proof", {}),
    ],
)
def test_a_request_without_the_key_is_401_whatever_its_body(keyed, method, path, kwargs) -> None:
    response = keyed.request(method, path, **kwargs)
    assert response.status_code == 401, response.text
    assert "API key" in response.json()["detail"] and response.headers["www-authenticate"].startswith("Bearer")
    wrong = keyed.request(method, path, **{**kwargs, "headers": {**kwargs.get("headers", {}), "X-API-Key": "wrong"}})
    assert wrong.status_code == 401 and "not valid" in wrong.text


def test_merkle_proofs_are_guarded_like_snapshots(keyed) -> None:
    tree = keyed.get(f"/reports/merkle/checkpoints/{OLD}")
    assert tree.status_code in (200, 404, 409)  # the tree (roots and model ids) stays public
    assert tree.status_code != 401
    params = {"checkpoint_id": OLD, "model_id": "m-a", "period_start": "2026-11-16T00:00"}
    assert keyed.get("/reports/merkle/proof", params=params).status_code == 401
    assert keyed.get("/reports/snapshots").status_code == 401
    assert keyed.get("/reports/merkle/proof", params=params, headers=ADMIN).status_code != 401
    spec = keyed.get("/openapi.json").json()["paths"]
    assert "security" in spec["/reports/merkle/proof"]["get"] and "security" not in spec["/reports/merkle/checkpoints/{checkpoint_id}"]["get"]


def test_operator_details_are_shown_to_admins_only(tmp_path) -> None:
    seeded = seed_lake(tmp_path / "home")
    with serve(create_app(ApiSettings(home=seeded.lake.home, api_key=KEY))) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        confirmed = http.patch(f"/reports/checkpoints/{NEW}/status", json={"status": "SUBMITTED"}, headers=ADMIN)
        assert confirmed.json()["history"][-1]["caller"] == "api-key@127.0.0.1"
        root = str(seeded.lake.root)
        for path in ("/healthz", "/info", f"/reports/checkpoints/{NEW}"):
            public, admin = http.get(path), http.get(path, headers=ADMIN)
            assert public.status_code == admin.status_code == 200
            assert root not in public.text and "127.0.0.1" not in public.text, path
        assert http.get("/healthz").json()["lake"] is None and http.get("/healthz", headers=ADMIN).json()["lake"] == root
        assert http.get("/info", headers=ADMIN).json()["lake"] == root
        assert http.get(f"/reports/checkpoints/{NEW}").json()["history"][-1]["caller"] == "api-key"
        # Asked again (the checkpoint routes are cached): each audience keeps its own answer.
        assert http.get(f"/reports/checkpoints/{NEW}", headers=ADMIN).json()["history"][-1]["caller"] == "api-key@127.0.0.1"
        assert http.get(f"/reports/checkpoints/{NEW}").json()["history"][-1]["caller"] == "api-key"


def test_prefixes_move_reads_between_tiers_but_never_open_writes(lake_home) -> None:
    """The reference's API_ADMIN_PREFIXES=/reports/checkpoints/ with its public
    /reports/checkpoints/rewards: the longest prefix wins."""
    settings = ApiSettings.from_env(
        {
            "COORDINATOR_HOME": str(lake_home), "API_KEY": KEY, "API_ADMIN_PREFIXES": "/reports/checkpoints/",
            "API_PUBLIC_PREFIXES": "/reports/checkpoints/rewards, /reports/predictions,/reports",
        }
    )
    assert settings.admin_prefixes == ("/reports/checkpoints/",)
    with serve(create_app(settings)) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        assert http.get("/reports/checkpoints").status_code == 200
        assert http.get("/reports/checkpoints/rewards").status_code == 200
        assert http.get(f"/reports/checkpoints/{NEW}/emission").status_code == 401
        assert http.get(f"/reports/checkpoints/{NEW}/emission", headers=ADMIN).status_code == 200
        assert http.get("/reports/predictions").status_code == 200
        # `/reports` is public, yet backfills stay admin only through a longer prefix; writes always.
        assert http.get("/reports/backfill/jobs").status_code == 401  # the route itself asks for the admin key
        assert http.patch(f"/reports/checkpoints/{NEW}/status", json={"status": "SUBMITTED"}).status_code == 401
        spec = http.get("/openapi.json").json()["paths"]
        assert "security" in spec["/reports/checkpoints/{checkpoint_id}/emission"]["get"]
        assert "security" not in spec["/reports/checkpoints/rewards"]["get"]
    with pytest.raises(ValueError, match="API_PUBLIC_PREFIXES"):
        ApiSettings.from_env({"COORDINATOR_HOME": str(lake_home), "API_PUBLIC_PREFIXES": "reports"})


def test_pending_emissions_are_public_by_default(keyed) -> None:
    """The decision documented in api.auth: an emission derives from public data, and seeing it
    before it goes on-chain lets participants check it."""
    assert keyed.get(f"/reports/checkpoints/{NEW}").json()["status"] == "PENDING"
    for path in (f"/reports/checkpoints/{NEW}", f"/reports/checkpoints/{NEW}/emission", "/reports/emissions/latest", "/reports/checkpoints"):
        assert keyed.get(path).status_code == 200, path


# ---- the access log ----------------------------------------------------------------------------


def test_redact_query_spellings() -> None:
    assert redact_query("/x?api_key=s3cret&a=1") == "/x?api_key=***&a=1"
    assert redact_query("/x?a=1&api%5Fkey=s3cret") == "/x?a=1&api%5Fkey=***"
    assert redact_query("/x?API_KEY=s3cret") == "/x?API_KEY=***"
    assert redact_query("/x?api_keys=1&my_api_key=2") == "/x?api_keys=1&my_api_key=2"
    assert redact_query("/plain") == "/plain"


def test_a_key_in_the_query_string_never_reaches_the_access_log(lake_home, tmp_path) -> None:
    """`coordinator api` as an operator runs it, with uvicorn's own access log on."""
    port = free_port()
    log = tmp_path / "api.log"
    env = {**os.environ, "COORDINATOR_HOME": str(lake_home), "API_KEY": KEY, "API_READ_AUTH": "true"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coordinator_dagster.cli.main", "api", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"

            def up() -> bool:
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            assert wait_for(up, 60), log.read_text()
            assert httpx.get(f"{base}/reports/predictions?api_key={KEY}&limit=1").status_code == 200
            assert httpx.get(f"{base}/reports/snapshots?limit=1&api%5Fkey={KEY}").status_code == 200
            assert httpx.get(f"{base}/reports/snapshots?api_key={KEY}x").status_code == 401
            assert wait_for(lambda: log.read_text().count("GET /reports/") >= 3, 10)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text = log.read_text()
    assert KEY not in text, text
    assert "api_key=***" in text and "api%5Fkey=***" in text

"""The API side of issue 20's audit and payout gate: the audit bundle route (public or admin by
AUDIT_BUNDLE_ACCESS) and the dashboard's prizes, which with CHECKPOINT_APPROVAL=required are
served only for an approved emission."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from coordinator_dagster import checkpoint_review as review
from coordinator_dagster.audit import bundle
from coordinator_dagster.audit.verify import verify_bundle
from coordinator_dagster.contracts import default_contract
from tests.api_fixtures import serve
from tests.test_assets import NOW, WEEK_KEY, built, pipeline_copy  # noqa: F401  (fixtures)

pytestmark = pytest.mark.process
CID = f"CKP-{WEEK_KEY}"


def current_hash(lake) -> str:
    return review.emission_hash(lake.query("SELECT emission FROM checkpoints WHERE checkpoint_id = ?", [CID])["emission"][0])


def test_the_bundle_route_serves_the_current_emissions_bundle_by_the_configured_tier(pipeline_copy, tmp_path):  # noqa: F811
    _, _, lake, _ = pipeline_copy
    with serve(create_app(ApiSettings(home=lake.home, api_key="k"))) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        missing = http.get(f"/reports/checkpoints/{CID}/bundle")
        assert missing.status_code == 404 and "audit_bundle asset" in missing.json()["detail"]
        assert http.get("/reports/checkpoints/CKP-2020-01-05/bundle").status_code == 404
        path, _ = bundle.build_bundle(lake, default_contract(), CID, NOW)
        got = http.get(f"/reports/checkpoints/{CID}/bundle")  # public by default, and never a stale cached 404
        assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
        assert got.headers["x-emission-hash"] == current_hash(lake) and got.content == path.read_bytes()
        (tmp_path / "downloaded.zip").write_bytes(got.content)
        assert verify_bundle(tmp_path / "downloaded.zip").ok
        assert "manifest.json" in zipfile.ZipFile(io.BytesIO(got.content)).namelist()
    admin_only = ApiSettings(home=lake.home, api_key="k", audit_bundle_access="admin")
    with serve(create_app(admin_only)) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        assert http.get(f"/reports/checkpoints/{CID}/bundle").status_code == 401
        assert http.get(f"/reports/checkpoints/{CID}/bundle", headers={"X-API-Key": "k"}).status_code == 200
        assert http.get(f"/reports/checkpoints/{CID}/diff").status_code == 200  # the other checkpoint routes keep their tier


def test_prizes_wait_for_the_approval_when_it_is_required(pipeline_copy):  # noqa: F811
    _, _, lake, _ = pipeline_copy
    with serve(create_app(ApiSettings(home=lake.home))) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        # Approval off (the reference's behaviour): prizes are served as before.
        assert http.get(f"/reports/checkpoints/{CID}/prizes", params={"total_prize": 1000}).status_code == 200
    with serve(create_app(ApiSettings(home=lake.home, checkpoint_approval="required"))) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        for path in (f"/reports/checkpoints/{CID}/prizes", "/reports/checkpoints/latest/prizes"):
            refused = http.get(path, params={"total_prize": 1000})
            assert refused.status_code == 409, refused.text
            detail = refused.json()["detail"]
            assert detail["approved_hash"] is None and detail["current_hash"] == current_hash(lake)
            assert "has no payable prizes: it has not been approved" in detail["message"]
        assert review.record_approval(lake, CID, current_hash(lake), "op", dt.datetime.now(dt.timezone.utc))
        # Worked example: 1,000 tokens over the demo's three models at 50 / 25 / 25 %.
        prizes = http.get(f"/reports/checkpoints/{CID}/prizes", params={"total_prize": 1000})
        assert prizes.status_code == 200, prizes.text
        assert sorted(p["prize"] for p in prizes.json()) == [250, 250, 500]
        assert http.get("/reports/checkpoints/latest/prizes", params={"total_prize": 1000}).status_code == 200
        # An approval of another emission (the checkpoint changed since) does not make it payable.
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
        lake.append_event("checkpoint_approvals", review.approval_row(CID, review.APPROVED, "f" * 64, "op", later))
        stale = http.get(f"/reports/checkpoints/{CID}/prizes", params={"total_prize": 1000})
        assert stale.status_code == 409 and stale.json()["detail"]["approved_hash"] == "f" * 64
        assert "changed after it was approved" in stale.json()["detail"]["message"]

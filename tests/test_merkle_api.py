"""Tamper evidence end to end: a checkpoint built by the pipeline, a proof served by the API,
verified offline by `coordinator verify-proof`; one flipped byte makes it fail."""

import datetime as dt
import json
import subprocess
import sys

import httpx
import polars as pl
import pytest

from api.app import create_app
from api.settings import ApiSettings
from coordinator_dagster.cli.demo import run_demo
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.scoring.merkle import verify_proof
from tests.api_fixtures import serve

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

CHECKPOINT = "CKP-2026-11-15"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("merkle") / "home"
    run_demo(home, dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc), 1)
    return home


def verify_cli(path, root):
    return subprocess.run(
        [sys.executable, "-m", "coordinator_dagster.cli.main", "verify-proof", str(path), "--root", root],
        capture_output=True, text=True, timeout=60,
    )


def test_api_proofs_verify_offline_and_tampering_fails(built, tmp_path):
    lake = Lake(built)
    [checkpoint] = lake.read("checkpoints", "2026-11-15").to_dicts()
    root = checkpoint["merkle_root"]
    assert root and len(root) == 64
    with serve(create_app(ApiSettings(home=built))) as base:
        tree = httpx.get(f"{base}/reports/merkle/checkpoints/{CHECKPOINT}").json()
        assert tree["merkle_root"] == root and len(tree["cycles"]) == 24
        listed = httpx.get(f"{base}/reports/checkpoints").json()
        assert listed[0]["merkle_root"] == root
        # Proofs for the first, a middle and the last cycle, for different models.
        for hour, model in (("2026-11-20T00:00:00Z", "momentum"), ("2026-11-20T13:00:00Z", "contrarian"), ("2026-11-20T23:00:00Z", "mean-reversion")):
            answer = httpx.get(f"{base}/reports/merkle/proof", params={"checkpoint_id": CHECKPOINT, "model_id": model, "period_start": hour})
            assert answer.status_code == 200, answer.text
            assert verify_proof(answer.json()["proof"], root) == (True, verify_proof(answer.json()["proof"], root)[1])
            path = tmp_path / f"{model}.json"
            path.write_text(answer.text)
            ok = verify_cli(path, root)
            assert ok.returncode == 0 and ok.stdout.startswith("valid"), ok.stdout + ok.stderr

        # One byte of the snapshot changed (a prediction count inflated by one): the proof fails.
        body = answer.json()
        body["proof"]["snapshot"]["prediction_count"] += 1
        tampered = tmp_path / "tampered.json"
        tampered.write_text(json.dumps(body))
        bad = verify_cli(tampered, root)
        assert bad.returncode == 1 and "INVALID" in bad.stdout and "leaf" in bad.stdout

        missing = httpx.get(f"{base}/reports/merkle/proof", params={"checkpoint_id": CHECKPOINT, "model_id": "ghost", "period_start": "2026-11-20T00:00:00Z"})
        assert missing.status_code == 404 and "ghost" in missing.json()["detail"]
        assert httpx.get(f"{base}/reports/merkle/checkpoints/CKP-1999-01-03").status_code == 404
        assert httpx.get(f"{base}/reports/merkle/proof", params={"checkpoint_id": CHECKPOINT, "model_id": "x", "period_start": "yesterday"}).status_code == 422


def test_re_scored_snapshots_no_longer_prove_against_the_stored_root(built):
    lake = Lake(built)
    key = "2026-11-20-05:00"
    original = lake.read("snapshots", key)
    try:
        lake.write("snapshots", original.with_columns(pl.col("prediction_count") + 1), key)
        with serve(create_app(ApiSettings(home=built))) as base:
            answer = httpx.get(f"{base}/reports/merkle/checkpoints/{CHECKPOINT}")
            assert answer.status_code == 409
            assert "no longer reproduce" in answer.json()["detail"]
            assert "earlier Merkle scheme" in answer.json()["detail"]  # what a lake from before v2 sees
    finally:
        lake.write("snapshots", original, key)

"""The report API's leaderboards per group and payout tables, served by a real uvicorn server
over a lake written the way the assets write it."""

import datetime as dt
import json

import httpx
import polars as pl
import pytest

from api.app import create_app
from api.settings import ApiSettings
from coordinator_dagster.contracts import default_contract
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.scoring import group_ranking
from coordinator_dagster.scoring.payouts import payout_frame
from coordinator_dagster.scoring.top_k_rewards import TopKPerGroup
from tests.api_fixtures import serve
from tests.test_top_k_rewards import ENTRIES

pytestmark = pytest.mark.process  # starts a server

T = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
UTC_TS = pl.Datetime("us", "UTC")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("ranks") / "home"
    contract = default_contract()
    lake = Lake.for_contract(home, contract)
    rounds = pl.DataFrame(
        [
            ("m-a", "BTC", 3600, T, 0.9), ("m-a", "ETH", 86400, T, 0.4),
            ("m-b", "BTC", 3600, T, 0.5), ("m-b", "ETH", 86400, T, 0.6),
        ],
        schema={"model_id": pl.String, "subject": pl.String, "horizon_seconds": pl.Int64, "performed_at": UTC_TS, "score": pl.Float64},
        orient="row",
    )
    board = group_ranking.group_leaderboard(rounds, contract.aggregation.windows, "score_anchor")
    lake.write("group_leaderboard", board)
    models = pl.DataFrame(
        {"model_id": ["m-a", "m-b"], "name": ["Alpha", "Beta"], "cruncher": ["alice", "bob"], "cruncher_index": [3, 7],
         "entrypoint": ["a:A", "b:B"], "joined_at": [T, T], "active": [True, True], "status": ["healthy", "healthy"]},
        schema=schemas.MODELS,
    )
    lake.write("models", models)
    decided = TopKPerGroup(top_k=3, benchmark_model_id="bench", benchmark_cutoff=True, pool_amount=7, pool_unit="unit").payouts(ENTRIES, "pk")
    lake.write("checkpoint_payouts", payout_frame("CKP-2026-11-15", decided.rows, 7, "unit"), "2026-11-15")
    checkpoint = {
        "checkpoint_id": "CKP-2026-11-15", "period_start": dt.datetime(2026, 11, 15, tzinfo=dt.timezone.utc),
        "period_end": dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc), "status": "PENDING", "ranking_key": "horizon:anchor",
        "model_count": len(ENTRIES), "entries": json.dumps(ENTRIES), "emission": decided.emission.model_dump_json(), "merkle_root": None,
    }
    lake.write("checkpoints", pl.DataFrame([checkpoint], schema=schemas.CHECKPOINTS), "2026-11-15")
    with serve(create_app(ApiSettings(home=home))) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield http


def test_ranks_by_horizon_and_by_param_as_published(client):
    response = client.get("/reports/leaderboard/ranks")
    assert response.status_code == 200, response.text
    entries = response.json()
    assert [e["model_id"] for e in entries] == ["m-a", "m-b"]
    a, b = entries
    # Overall (equal asset weights): a (0.9 + 0.4) / 2 = 0.65, b (0.5 + 0.6) / 2 = 0.55.
    assert a["rank"] == 1 and a["score"]["anchor"] == pytest.approx(0.65)
    assert set(a["score"]) == {"recent", "steady", "anchor"}
    assert a["ranks_by_horizon"]["3600"] == {"rank": 1, "score": {"recent": 0.9, "steady": 0.9, "anchor": 0.9}}
    assert b["ranks_by_horizon"]["86400"]["rank"] == 1 and a["ranks_by_horizon"]["86400"]["rank"] == 2
    assert set(a["ranks_by_param"]) == {"BTC:3600", "ETH:86400"}
    assert (a["model_name"], a["player_name"], a["cruncher_index"]) == ("Alpha", "alice", 3)


def test_a_checkpoints_payout_table_reports_the_retained_share(client):
    body = client.get("/reports/checkpoints/CKP-2026-11-15/payouts").json()
    assert body["pool_amount"] == 7 and body["pool_unit"] == "unit"
    # The worked example of tests/test_top_k_rewards.py: slot 3 of both horizons is retained.
    assert body["retained_pct"] == 242_183_852 and body["paid_pct"] + body["retained_pct"] == FRAC64_MULTIPLIER
    assert body["paid_prize"] == 5 and body["retained_prize"] == 2
    retained = [line for line in body["lines"] if line["status"] == "retained"]
    assert [(line["group_key"], line["slot"], line["prize"]) for line in retained] == [("3600", 3, 1), ("86400", 3, 1)]
    assert client.get("/reports/checkpoints/CKP-1999-01-03/payouts").status_code == 404


def test_the_emission_reports_its_retained_share(client):
    emission = client.get("/reports/checkpoints/CKP-2026-11-15/emission").json()
    assert emission["retained_pct"] == 242_183_852
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) + emission["retained_pct"] == FRAC64_MULTIPLIER

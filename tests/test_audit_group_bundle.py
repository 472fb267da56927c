"""Audit bundles of checkpoints paid by the production rule (`TopKPerGroup`): built over the lake
of a density-competition demo (two horizons, two assets, three models, one the benchmark), the
bundle re-derives the group ranking from its round scores, then the emission, the payout table and
the Merkle root; a flipped byte, altered round scores and changed settings fail naming the first
difference."""

from __future__ import annotations

import datetime as dt
import io
import json
import warnings
import zipfile

import polars as pl
import pytest

from coordinator_dagster.audit import bundle
from coordinator_dagster.audit.verify import verify_bundle
from coordinator_dagster.cli.density_demo import run_density_demo
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.prediction_profiles import PredictionProfile
from coordinator_dagster.scoring.top_k_rewards import TopKPerGroup

START = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
CID = "CKP-2026-11-15"
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc)


class Steady:
    """A Gaussian with a fixed per-minute spread grown with √step."""

    per_minute = {"BTC": 80.0, "ETH": 8.0}

    def tick(self, data):
        pass

    def predict_all(self, asset, horizon, steps):
        spread = self.per_minute[asset]
        return {step: [{"type": "builtin", "name": "norm", "params": {"loc": 0.0, "scale": spread * (step / 60) ** 0.5}}] * (horizon // step) for step in steps}


class Wide(Steady):
    per_minute = {"BTC": 150.0, "ETH": 15.0}


def _contract() -> CrunchContract:
    profiles = [
        PredictionProfile(name="1h", assets=["BTC", "ETH"], horizon_seconds=3600, steps=[300, 3600], interval_seconds=3600, history_days=1),
        PredictionProfile(name="2h", assets=["BTC", "ETH"], horizon_seconds=7200, steps=[3600, 7200], interval_seconds=7200, history_days=1),
    ]
    rule = TopKPerGroup(top_k=3, alpha=1.0, benchmark_model_id="wide", pool_amount=1_000_000, pool_unit="USDC micro-unit (1e-6)")
    return CrunchContract(prediction_profiles=profiles, build_emission=rule, checkpoint_period="weekly")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    pytest.importorskip("crunch_synth")
    home = tmp_path_factory.mktemp("group-bundle") / "home"
    manifest = home.parent / "manifest.json"
    entries = [("example", "crunch_synth.examples.exampletracker:GaussianStepTracker"), ("steady", f"{__name__}:Steady"), ("wide", f"{__name__}:Wide")]
    manifest.write_text(json.dumps([{"model_id": m, "name": m, "cruncher": m, "cruncher_index": i, "entrypoint": e} for i, (m, e) in enumerate(entries)]))
    contract = _contract()
    with warnings.catch_warnings():
        # crunch-synth's PriceStore trims its window through sortedcontainers' deprecated `iloc`.
        warnings.filterwarnings("ignore", "sorted_dict.iloc is deprecated", DeprecationWarning)
        run_density_demo(home, START, 1, contract, manifest, seed=5)
    lake = Lake.for_contract(home, contract)
    path, new = bundle.build_bundle(lake, contract, CID, NOW)
    assert new
    return lake, contract, path


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _forged(members: dict[str, bytes], out, **replaced: bytes):
    """The bundle with members replaced and its manifest made to agree: only recomputation can tell."""
    body = {n: d for n, d in {**members, **replaced}.items() if n != bundle.MANIFEST}
    body[bundle.MANIFEST] = bundle.manifest(body, CID)
    out.write_bytes(bundle.archive(body))
    return out


def test_a_group_checkpoint_bundle_verifies_its_ranking_emission_and_payouts(demo):
    lake, contract, path = demo
    members = _members(path)
    assert set(members) == {"rounds.parquet", "models.parquet", "snapshots.parquet", "payouts.parquet", "contract.json", "checkpoint.json", "emission.json", bundle.MANIFEST}
    point = json.loads(members["checkpoint.json"])
    assert point["ranked_by"] == "groups" and point["round_source"] == "density_round_scores" and point["pool_amount"] == 1_000_000
    verdict = verify_bundle(path)
    assert verdict.ok, verdict.message
    assert verdict.message == f"{CID}: verified"
    assert [c.split(":")[0].split(" (")[0] for c in verdict.checked] == [
        "7 members match the manifest's sha256", "contract rebuilt; its callables' code is the bundle's", "group ranking",
        "emission re-derived byte for byte", "payouts", "Merkle root re-derived",
    ]
    assert any(c.startswith("group ranking: 3 entries re-derived identically from") for c in verdict.checked)
    assert any(c.startswith("payouts: ") and "(pool 1000000)" in c for c in verdict.checked)
    # The bundle holds the payout table the checkpoint wrote: the benchmark unpaid, slot 3 of each horizon retained.
    table = pl.read_parquet(io.BytesIO(members["payouts.parquet"]))
    assert table.filter(pl.col("model_id") == "wide")["status"].to_list() == ["unpaid", "unpaid"]
    assert sorted(table.filter(pl.col("status") == "retained").select("group_key", "slot").rows()) == [("3600", 3), ("7200", 3)]
    assert table["prize"].sum() == 1_000_000
    # Same data, same bytes: a second build writes nothing new.
    again, new = bundle.build_bundle(lake, contract, CID, NOW)
    assert again == path and not new


@pytest.mark.parametrize("member", ["rounds.parquet", "payouts.parquet", "checkpoint.json"])
def test_a_flipped_byte_fails_naming_the_member(demo, member, tmp_path):
    _, _, path = demo
    members = _members(path)
    data = bytearray(members[member])
    data[len(data) // 2] ^= 0x01
    members[member] = bytes(data)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bundle.archive(members))
    verdict = verify_bundle(bad)
    assert not verdict.ok and verdict.message.startswith(f"{member}: sha256")


def test_altered_round_scores_fail_at_the_group_ranking(demo, tmp_path):
    """A forger lowers every 1 h score of the model paid first: the manifest agrees, the ranking does not."""
    _, _, path = demo
    members = _members(path)
    rounds = pl.read_parquet(io.BytesIO(members["rounds.parquet"]))
    first = json.loads(members["checkpoint.json"])["entries"]
    paid_first = max(first, key=lambda e: e["ranks_by_horizon"]["3600"]["score"]["anchor"] if e["model_id"] != "wide" else -1)["model_id"]
    lowered = rounds.with_columns(
        pl.when((pl.col("model_id") == paid_first) & (pl.col("horizon_seconds") == 3600)).then(0.0).otherwise(pl.col("score")).alias("score")
    )
    verdict = verify_bundle(_forged(members, tmp_path / "forged.zip", **{"rounds.parquet": bundle.parquet_bytes(lowered)}))
    assert not verdict.ok
    assert verdict.message.startswith("group ranking: entry ")
    assert verdict.checked[-1] == "contract rebuilt; its callables' code is the bundle's"


def test_a_changed_setting_fails_at_the_first_number_it_changes(demo, tmp_path):
    _, _, path = demo
    members = _members(path)
    record = json.loads(members["contract.json"])
    # α 1 → 2: the same ranking, other slot weights → the emission is the first to differ.
    record["callables"]["build_emission"]["config"]["alpha"] = 2.0
    verdict = verify_bundle(_forged(members, tmp_path / "alpha.zip", **{"contract.json": bundle.json_bytes(record)}))
    assert not verdict.ok and verdict.message.startswith("emission: byte ")
    assert any(c.startswith("group ranking:") for c in verdict.checked)
    # Another pool: the same shares, other prizes → the payout table is the first to differ.
    point = json.loads(members["checkpoint.json"])
    point["pool_amount"] = 2_000_000
    verdict = verify_bundle(_forged(members, tmp_path / "pool.zip", **{"checkpoint.json": bundle.json_bytes(point)}))
    assert not verdict.ok and verdict.message.startswith("payouts: row ") and "column prize" in verdict.message
    assert any(c.startswith("emission re-derived byte for byte") for c in verdict.checked)


def test_the_cli_verifies_a_group_bundle(demo, capsys):
    from coordinator_dagster.cli.main import main

    _, _, path = demo
    assert main(["audit", "verify", str(path)]) == 0
    assert f"{CID}: verified" in capsys.readouterr().out


def test_the_ranking_reproducible_check_re_derives_the_group_entries_from_the_lake(demo):
    from coordinator_dagster.audit.ranking_check import ranking_reproducible

    lake, contract, _ = demo
    [row] = lake.query("SELECT * FROM checkpoints WHERE checkpoint_id = ?", [CID]).to_dicts()
    entries = json.loads(row["entries"])
    start, end = row["period_start"], row["period_end"]
    period = lake.read_window("snapshots", start, end, column="period_start")
    outcome = ranking_reproducible(lake, contract, start, end, period, entries)
    assert outcome.passed and "group ranking from the lake's round scores" in outcome.description
    stale = [{**e, "ranks_by_horizon": {}} if e["model_id"] == "example" else e for e in entries]
    outcome = ranking_reproducible(lake, contract, start, end, period, stale)
    assert not outcome.passed and outcome.metadata["first_difference"].startswith("ranking: stored")

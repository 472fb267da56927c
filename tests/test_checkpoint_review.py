"""The review gate of checkpoints (issue 20): emission hashes, approvals, the diff against the
previous checkpoint, the confirm gate (pure rules and over a real API server), and the revocation
of an approval when a rebuild changes the emission (the real `checkpoints` asset)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from api.solana import b58encode
from coordinator_dagster import checkpoint_review as review
from coordinator_dagster.checkpoint_lifecycle import Conflict
from coordinator_dagster.statuses import CheckpointStatus as S
from tests.api_fixtures import CHECKPOINT_KEYS, checkpoint_frame, seed_lake, serve
from tests.test_assets import WEEK_KEY, built, pipeline_copy, run  # noqa: F401  (fixtures)

T0 = dt.datetime(2026, 11, 20, 12, tzinfo=dt.timezone.utc)
OLD, NEW = (f"CKP-{key}" for key in CHECKPOINT_KEYS)  # OLD is SUBMITTED by the seed, NEW is PENDING
SIG = b58encode(bytes(range(1, 65)))


def approved(hash_: str, action: str = review.APPROVED, reason: str | None = None) -> review.Approval:
    return review.Approval(action, hash_, T0, "op", reason)


# ---- pure rules ----------------------------------------------------------------------------------


def test_the_emission_hash_is_sha256_of_the_canonical_json_whatever_the_spacing():
    emission = {"crunch": "C", "cruncher_rewards": [{"cruncher_index": 0, "reward_pct": 1_000_000_000}]}
    canonical = '{"crunch":"C","cruncher_rewards":[{"cruncher_index":0,"reward_pct":1000000000}]}'
    assert review.canonical_emission(emission) == canonical
    assert review.emission_hash(emission) == hashlib.sha256(canonical.encode()).hexdigest()
    assert review.emission_hash(json.dumps(emission, indent=2)) == review.emission_hash(emission)
    assert review.emission_hash({**emission, "crunch": "D"}) != review.emission_hash(emission)


def test_confirm_gate_requires_the_approved_hash_to_be_the_current_one():
    review.confirm_gate("CKP", "off", S.PENDING, "b" * 64, None)  # the reference's behaviour
    review.confirm_gate("CKP", "required", S.PENDING, "b" * 64, approved("b" * 64))
    review.confirm_gate("CKP", "required", S.SUBMITTED, "b" * 64, None)  # left to the lifecycle rules
    with pytest.raises(review.HashMismatch, match="not been approved") as none:
        review.confirm_gate("CKP", "required", S.PENDING, "b" * 64, None)
    assert (none.value.approved_hash, none.value.current_hash) == (None, "b" * 64)
    with pytest.raises(review.HashMismatch, match="changed after it was approved") as changed:
        review.confirm_gate("CKP", "required", S.PENDING, "b" * 64, approved("a" * 64))
    assert (changed.value.approved_hash, changed.value.current_hash) == ("a" * 64, "b" * 64)
    with pytest.raises(review.HashMismatch, match="revoked"):
        review.confirm_gate("CKP", "required", S.PENDING, "a" * 64, approved("a" * 64, review.REVOKED, "rebuilt"))


def test_approval_takes_only_the_current_hash_of_a_pending_checkpoint():
    assert review.approval("CKP", None, "a" * 64, "a" * 64, None) == review.APPROVED
    assert review.approval("CKP", S.PENDING, "a" * 64, "a" * 64, approved("a" * 64)) is None  # already
    with pytest.raises(review.HashMismatch) as stale:
        review.approval("CKP", S.PENDING, "b" * 64, "a" * 64, None)
    assert (stale.value.approved_hash, stale.value.current_hash) == ("a" * 64, "b" * 64)
    with pytest.raises(Conflict, match="only a PENDING"):
        review.approval("CKP", S.SUBMITTED, "a" * 64, "a" * 64, None)


def test_a_rebuild_revokes_an_approval_only_when_the_emission_changed():
    assert review.revocation_on_rebuild(None, "a" * 64) is None
    assert review.revocation_on_rebuild(approved("a" * 64), "a" * 64) is None  # same emission: kept
    assert review.revocation_on_rebuild(approved("a" * 64, review.REVOKED, "x"), "b" * 64) is None
    assert review.revocation_on_rebuild(approved("a" * 64), "b" * 64) == f"rebuilt: the emission changed from {'a' * 64} to {'b' * 64}"


def test_diff_per_cruncher_worked_example():
    def row(ranked, rewards):
        entries = [{"rank": r, "model_id": f"m{i}", "cruncher": f"c{i}", "cruncher_index": i} for i, r in ranked]
        return {"entries": json.dumps(entries), "emission": json.dumps({"cruncher_rewards": [{"cruncher_index": i, "reward_pct": p} for i, p in rewards]})}

    before = row([(0, 1), (1, 2), (2, 3)], [(0, 500_000_000), (1, 300_000_000), (2, 200_000_000)])
    after = row([(1, 1), (0, 2), (3, 3)], [(1, 500_000_000), (0, 300_000_000), (3, 200_000_000)])
    diff = {d["cruncher_index"]: d for d in review.checkpoint_diff(before, after)}
    assert [d["cruncher_index"] for d in review.checkpoint_diff(before, after)] == [1, 0, 3, 2]  # by rank now, gone last
    assert (diff[1]["rank"], diff[1]["previous_rank"], diff[1]["share_change"], diff[1]["change"]) == (1, 2, 200_000_000, "up")
    assert (diff[0]["change"], diff[0]["share_change"]) == ("down", -200_000_000)
    assert (diff[3]["change"], diff[3]["previous_reward_pct"]) == ("new", 0)
    assert (diff[2]["change"], diff[2]["reward_pct"], diff[2]["rank"]) == ("gone", 0, None)
    assert sum(d["share_change"] for d in diff.values()) == 0
    assert all(d["change"] == "same" for d in review.checkpoint_diff(before, before))
    assert "| c1 | m1 | 1 | 2 |" in review.diff_markdown("CKP-x", list(diff.values()))


# ---- over the API --------------------------------------------------------------------------------


@pytest.fixture
def gated(tmp_path):
    seeded = seed_lake(tmp_path / "home")
    settings = ApiSettings(home=seeded.lake.home, checkpoint_approval="required")
    with serve(create_app(settings)) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield seeded, http


@pytest.mark.process
def test_an_approved_checkpoint_whose_emission_changed_is_refused_at_confirm_with_both_hashes(gated):
    seeded, http = gated
    refused = http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG})
    assert refused.status_code == 409 and "not been approved" in refused.json()["detail"]["message"]

    shown = http.get(f"/reports/checkpoints/{NEW}/diff").json()
    first = shown["emission_hash"]
    assert shown["previous_checkpoint_id"] == OLD and shown["approved_hash"] is None and shown["approval_required"]
    # OLD ranked 3 models, NEW 2: the third cruncher is gone.
    assert [d["change"] for d in shown["diff"]][-1] == "gone" and len(shown["diff"]) == 3

    wrong = http.post(f"/reports/checkpoints/{NEW}/approve", json={"emission_hash": "0" * 64})
    assert wrong.status_code == 409 and wrong.json()["detail"]["current_hash"] == first
    ok = http.post(f"/reports/checkpoints/{NEW}/approve", json={"emission_hash": first})
    assert ok.status_code == 200 and ok.json()["approved_hash"] == first
    assert [e["action"] for e in ok.json()["approvals"]] == ["approved"]
    assert http.get(f"/reports/checkpoints/{NEW}/diff").json()["approved_hash"] == first  # the cache saw the approval

    # The scores change before confirmation: the checkpoint now holds another emission.
    seeded.lake.write("checkpoints", checkpoint_frame(CHECKPOINT_KEYS[1], 3), CHECKPOINT_KEYS[1])
    current = http.get(f"/reports/checkpoints/{NEW}/diff").json()["emission_hash"]
    assert current != first
    refused = http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG})
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"]["approved_hash"] == first and refused.json()["detail"]["current_hash"] == current
    assert first in refused.json()["detail"]["message"] and current in refused.json()["detail"]["message"]
    assert http.get(f"/reports/checkpoints/{NEW}").json()["status"] == "PENDING"

    assert http.post(f"/reports/checkpoints/{NEW}/approve", json={"emission_hash": current}).status_code == 200
    confirmed = http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG})
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "SUBMITTED"
    late = http.post(f"/reports/checkpoints/{NEW}/approve", json={"emission_hash": current})
    assert late.status_code == 409 and "only a PENDING" in late.text


@pytest.mark.process
def test_with_approval_off_confirm_is_the_references(tmp_path):
    seeded = seed_lake(tmp_path / "home")
    with serve(create_app(ApiSettings(home=seeded.lake.home))) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        assert http.get(f"/reports/checkpoints/{NEW}/diff").json()["approval_required"] is False
        assert http.post(f"/reports/checkpoints/{NEW}/confirm", json={"tx_hash": SIG}).status_code == 200


# ---- the asset: a rebuild drops an approval of another emission -----------------------------------


def test_rebuilding_an_approved_checkpoint_with_another_emission_revokes_the_approval(pipeline_copy):  # noqa: F811
    _, resources, lake, _ = pipeline_copy
    cid = f"CKP-{WEEK_KEY}"
    built_hash = lake.read("checkpoint_reviews", WEEK_KEY)["emission_hash"][0]
    assert built_hash == review.emission_hash(lake.read("checkpoints", WEEK_KEY)["emission"][0])

    # Approving the emission as built, then rebuilding it unchanged, keeps the approval.
    assert review.record_approval(lake, cid, built_hash, "op", T0)
    run(resources, ["checkpoints"], WEEK_KEY)
    assert review.approval_events(lake, cid)["action"].to_list() == ["approved"]

    # An approval of an emission the rebuild does not reproduce (the scores changed) is revoked.
    other = "f" * 64
    lake.append_event("checkpoint_approvals", review.approval_row(cid, review.APPROVED, other, "op", T0 + dt.timedelta(seconds=1)))
    result = run(resources, ["checkpoints"], WEEK_KEY)
    events = review.approval_events(lake, cid)
    assert events["action"].to_list() == ["approved", "approved", "revoked"]
    assert events["reason"][-1] == f"rebuilt: the emission changed from {other} to {built_hash}"
    assert events["caller"][-1].startswith("dagster:run ")
    metadata = result.asset_materializations_for_node("checkpoints")[0].metadata
    assert metadata["emission_hash"].value == built_hash and "revoked" in metadata["approval"].value
    assert "against" in metadata["diff"].value or "no previous checkpoint" in metadata["diff"].value
    with pytest.raises(review.HashMismatch):
        review.confirm_gate(cid, "required", S.PENDING, built_hash, review.latest_approval(events))


def test_the_approval_job_approves_the_current_hash_and_fails_on_another(pipeline_copy):  # noqa: F811
    _, resources, lake, _ = pipeline_copy
    from sensors.checkpoint_approval import approve_checkpoint_job

    cid = f"CKP-{WEEK_KEY}"
    current = lake.read("checkpoint_reviews", WEEK_KEY)["emission_hash"][0]

    def launch(hash_):
        config = {"ops": {"approve_checkpoint": {"config": {"checkpoint_id": cid, "emission_hash": hash_}}}}
        return approve_checkpoint_job.execute_in_process(run_config=config, resources=resources, raise_on_error=False)

    failed = launch("e" * 64)
    assert not failed.success and current in str(failed.all_events)
    assert launch(current).success
    assert review.latest_approval(review.approval_events(lake, cid)).approved_hash == current


@pytest.mark.process
def test_every_model_of_a_demo_checkpoint_is_explained_down_to_verified_proofs(pipeline_copy, capsys):  # noqa: F811
    from coordinator_dagster.checkpoint_explain import explain
    from coordinator_dagster.contracts import default_contract
    from coordinator_dagster.scoring.merkle import verify_proof

    _, _, lake, _ = pipeline_copy
    cid = f"CKP-{WEEK_KEY}"
    row = lake.read("checkpoints", WEEK_KEY).row(0, named=True)
    entries = json.loads(row["entries"])
    emission = json.loads(row["emission"])
    assert entries
    shares = {}
    for entry in entries:
        answer = explain(lake, default_contract(), cid, entry["model_id"])
        assert answer["reproducible"] and answer["rank"] == entry["rank"]
        assert answer["snapshots"] and all(verify_proof(s["proof"], row["merkle_root"])[0] for s in answer["snapshots"])
        assert sum(s["scored_count"] for s in answer["snapshots"]) == entry["scored_count"]
        shares[answer["cruncher_index"]] = answer["reward_pct"]
    # The explanations add up to the emission: every cruncher's share, nothing more.
    assert shares == {r["cruncher_index"]: r["reward_pct"] for r in emission["cruncher_rewards"]}
    with pytest.raises(KeyError):
        explain(lake, default_contract(), cid, "nobody")

    # The same answer from the API (the read tier), and a 404 for a model it did not rank.
    model = entries[0]["model_id"]
    with serve(create_app(ApiSettings(home=lake.home))) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        answer = http.get(f"/reports/checkpoints/{cid}/explain", params={"model_id": model})
        assert answer.status_code == 200, answer.text
        assert answer.json()["reward_pct"] == explain(lake, default_contract(), cid, model)["reward_pct"]
        assert answer.json()["snapshots"][0]["proof"]["checkpoint_root"] == row["merkle_root"]
        assert http.get(f"/reports/checkpoints/{cid}/explain", params={"model_id": "nobody"}).status_code == 404

    # And from the CLI.
    from coordinator_dagster.cli.main import main

    assert main(["explain", cid, model, "--home", str(lake.home)]) == 0
    assert json.loads(capsys.readouterr().out)["rank"] == entries[0]["rank"]
    assert main(["explain", cid, "nobody", "--home", str(lake.home)]) == 1


def winner_takes_all(ranked_entries, crunch_pubkey, compute_provider=None, data_provider=None):
    """A candidate rule for the what-if test: everything to rank 1."""
    from coordinator_dagster.scoring.emission import emission_from_shares

    shares = [1_000_000_000] + [0] * (len(ranked_entries) - 1)
    return emission_from_shares(ranked_entries, shares, crunch_pubkey, compute_provider, data_provider)


def test_what_if_with_the_default_rule_reproduces_the_checkpoints_and_a_candidate_moves_shares(pipeline_copy, capsys):  # noqa: F811
    from coordinator_dagster.checkpoint_what_if import candidate_contract, stability, what_if
    from coordinator_dagster.cli.main import main
    from coordinator_dagster.contracts import default_contract

    _, _, lake, _ = pipeline_copy
    fingerprint = sorted((p.name, p.stat().st_mtime_ns) for p in lake.root.rglob("*.parquet"))
    same = what_if(lake, default_contract(), 5)
    assert [r["checkpoint_id"] for r in same] == [f"CKP-{WEEK_KEY}"]
    assert all(r["reproduced"] for r in same) and all(d["change"] == "same" for r in same for d in r["diff"])
    summary = stability(same)
    assert (summary["reproduced"], summary["share_changed"], summary["same_rank"]) == (1, 0, summary["crunchers"])

    candidate = candidate_contract(default_contract(), "tests.test_checkpoint_review:winner_takes_all")
    [moved] = what_if(lake, candidate, 5)
    assert not moved["reproduced"] and moved["diff"][0]["reward_pct"] == 1_000_000_000
    assert sum(d["share_change"] for d in moved["diff"]) == 0 and stability([moved])["share_changed"] > 0
    assert sorted((p.name, p.stat().st_mtime_ns) for p in lake.root.rglob("*.parquet")) == fingerprint  # nothing written

    assert main(["what-if", "--checkpoints", "2", "--home", str(lake.home)]) == 0
    assert "reproduced exactly" in capsys.readouterr().out
    assert main(["what-if", "--build-emission", "tests.test_checkpoint_review:winner_takes_all", "--home", str(lake.home)]) == 0
    assert '"share_changed": 0' not in capsys.readouterr().out

"""Audit bundles (issue 20, item 3): a checkpoint's bundle verifies from the bundle alone, and a
flipped byte in any member, a changed setting and a changed scoring function each fail
verification with a message naming what differs."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile

import pytest

from coordinator_dagster.audit import bundle, record
from coordinator_dagster.audit.verify import verify_bundle
from coordinator_dagster.contracts import default_contract
from tests.test_assets import NOW, WEEK_KEY, built, pipeline_copy  # noqa: F401  (fixtures)

CID = f"CKP-{WEEK_KEY}"


@pytest.fixture
def bundled(pipeline_copy):  # noqa: F811
    _, resources, lake, _ = pipeline_copy
    path, new = bundle.build_bundle(lake, default_contract(), CID, NOW)
    assert new
    return lake, path


def members_of(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rewrite(path, members: dict[str, bytes], out, rehash: bool = False):
    """The bundle with `members` replaced; with `rehash`, the manifest made to agree (a forger's
    bundle: only recomputation can tell)."""
    members = dict(members)
    if rehash:
        body = {n: d for n, d in members.items() if n != bundle.MANIFEST}
        members[bundle.MANIFEST] = bundle.manifest(body, CID)
    out.write_bytes(bundle.archive(members))
    return out


def test_a_bundle_verifies_and_is_written_once_with_the_same_bytes(bundled):
    lake, path = bundled
    verdict = verify_bundle(path)
    assert verdict.ok, verdict.message
    assert verdict.message == f"{CID}: verified"
    assert any(line.startswith("scores: ") for line in verdict.checked) and any("byte for byte" in line for line in verdict.checked)
    members = members_of(path)
    assert set(members) == {*(f"{n}.parquet" for n in bundle.FRAMES), "contract.json", "checkpoint.json", "emission.json", bundle.MANIFEST}
    stored = lake.read("checkpoints", WEEK_KEY).row(0, named=True)
    # emission.json is the canonical emission: its sha256 is the hash an operator approves.
    assert hashlib.sha256(members["emission.json"]).hexdigest() == json.loads(members["checkpoint.json"])["emission_hash"]
    assert json.loads(members["checkpoint.json"])["merkle_root"] == stored["merkle_root"]
    assert path.name.startswith(json.loads(members["checkpoint.json"])["emission_hash"][:16])
    # Same data → same archive: building again writes nothing new.
    again, new = bundle.build_bundle(lake, default_contract(), CID, NOW)
    assert (again, new) == (path, False)
    assert bundle.current_bundle(lake.home, CID, json.loads(members["checkpoint.json"])["emission_hash"]) == path


@pytest.mark.parametrize(
    "member",
    [*(f"{n}.parquet" for n in bundle.FRAMES), "contract.json", "checkpoint.json", "emission.json"],
)
def test_a_flipped_byte_in_any_member_fails_with_that_member_named(bundled, member, tmp_path):
    _, path = bundled
    members = members_of(path)
    data = bytearray(members[member])
    data[len(data) // 2] ^= 0x01
    bad = rewrite(path, {**members, member: bytes(data)}, tmp_path / "bad.zip")
    verdict = verify_bundle(bad)
    assert not verdict.ok
    assert verdict.message.startswith(f"{member}: sha256 ") and "altered" in verdict.message


def test_a_flipped_byte_in_the_manifest_or_the_archive_fails(bundled, tmp_path):
    _, path = bundled
    members = members_of(path)
    listed = bytearray(members[bundle.MANIFEST])
    listed[listed.index(b'"sha256"') + 20] ^= 0x01
    assert not verify_bundle(rewrite(path, {**members, bundle.MANIFEST: bytes(listed)}, tmp_path / "m.zip")).ok
    # Damage anywhere in the archive (a member's compressed bytes, the central directory):
    # a clear verdict, never an exception from the zip or deflate layer.
    data = path.read_bytes()
    for at in [len(data) // 7 * k for k in range(1, 7)] + [len(data) - 30]:
        raw = bytearray(data)
        raw[at] ^= 0xFF
        (tmp_path / "z.zip").write_bytes(bytes(raw))
        assert not verify_bundle(tmp_path / "z.zip").ok, at


def _with_setting(members: dict[str, bytes], change) -> dict[str, bytes]:
    contract = json.loads(members["contract.json"])
    change(contract["settings"])
    return {**members, "contract.json": bundle.json_bytes(contract)}


def test_a_changed_setting_fails_at_the_first_number_it_changes(bundled, tmp_path):
    _, path = bundled
    members = members_of(path)
    # Only the manifest's checksums catch an edit left unhashed...
    edited = _with_setting(members, lambda s: s.update(crunch_pubkey="SomeoneElse1111111111111111111111111111111"))
    verdict = verify_bundle(rewrite(path, edited, tmp_path / "a.zip"))
    assert not verdict.ok and verdict.message.startswith("contract.json: sha256")
    # ...and recomputation catches one whose manifest was made to agree: the emission's address.
    verdict = verify_bundle(rewrite(path, edited, tmp_path / "b.zip", rehash=True))
    assert not verdict.ok and verdict.message.startswith("emission: byte "), verdict.message
    assert "SomeoneElse" in verdict.message
    # A scoring setting shows at the first score it changes.
    version = _with_setting(members, lambda s: s.update(scoring_version="v2"))
    verdict = verify_bundle(rewrite(path, version, tmp_path / "c.zip", rehash=True))
    assert not verdict.ok and verdict.message.startswith("scores: row 0 ") and "column scoring_version" in verdict.message
    # The ranking direction leaves every score as it was and reverses the ranking.
    direction = _with_setting(members, lambda s: s["aggregation"].update(ranking_direction="asc"))
    verdict = verify_bundle(rewrite(path, direction, tmp_path / "d.zip", rehash=True))
    assert not verdict.ok and verdict.message.startswith("ranking: entry 0 differs"), verdict.message


def contrarian_score(prediction, ground_truth):
    """A different scoring function (the opposite sign of the default's)."""
    from coordinator_dagster.scoring.scores import default_scoring_function

    result = default_scoring_function(prediction, ground_truth)
    return result.model_copy(update={"value": -result.value}) if result.value is not None else result


def test_a_changed_scoring_function_fails_verification(bundled, tmp_path, monkeypatch):
    _, path = bundled
    members = members_of(path)
    # The code behind the bundle's scoring function is not the code at hand.
    import coordinator_dagster.scoring.scores as scores_module

    monkeypatch.setattr(scores_module, "default_scoring_function", contrarian_score)
    verdict = verify_bundle(path)
    assert not verdict.ok
    assert verdict.message.startswith("contract.json: scoring_function: the code of coordinator_dagster.scoring.scores:default_scoring_function")
    assert "the scoring function changed" in verdict.message
    monkeypatch.undo()
    assert verify_bundle(path).ok

    # A bundle naming another scoring function (its manifest made to agree) re-derives other scores.
    contract = json.loads(members["contract.json"])
    contract["callables"]["scoring_function"] = {"name": f"{__name__}:contrarian_score", "code_sha256": record.code_sha256(contrarian_score)}
    forged = rewrite(path, {**members, "contract.json": bundle.json_bytes(contract)}, tmp_path / "f.zip", rehash=True)
    verdict = verify_bundle(forged)
    assert not verdict.ok and verdict.message.startswith("scores: row 0 ") and "column value" in verdict.message


def test_the_contract_record_round_trips_and_refuses_unnamed_callables():
    contract = default_contract()
    again = record.rebuild_contract(json.loads(json.dumps(record.contract_record(contract))))
    assert again == contract
    with pytest.raises(record.RecordError, match="not importable by name"):
        record.contract_record(type(contract)(**{**dict(contract), "scoring_function": lambda prediction, ground_truth: None}))


def test_scores_are_derived_as_of_the_settled_time_once_the_period_is_over():
    from coordinator_dagster.audit.derive import scored_as_of
    import polars as pl

    contract = default_contract()  # grace 3,600 s
    last = dt.datetime(2026, 11, 20, 11, 1, tzinfo=dt.timezone.utc)
    predictions = pl.DataFrame({"resolvable_at": [last - dt.timedelta(hours=1), last]})
    assert scored_as_of(contract, predictions, last) == last  # not settled yet: now
    assert scored_as_of(contract, predictions, last + dt.timedelta(days=3)) == last + dt.timedelta(hours=1)


# ---- the assets: the bundle per checkpoint, and the "ranking reproducible" check ------------------


def test_the_audit_bundle_asset_writes_a_bundle_that_verifies(pipeline_copy):  # noqa: F811
    from tests.test_assets import run

    _, resources, lake, _ = pipeline_copy
    result = run(resources, ["audit_bundle"], WEEK_KEY)
    [event] = result.asset_materializations_for_node("audit_bundle")
    path = event.metadata["bundle"].value
    assert verify_bundle(path).ok and event.metadata["new_file"].value is True
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "bundle_verifies" and check.passed
    assert check.metadata["verdict"].value == f"{CID}: verified"
    # Re-materializing the same checkpoint writes no second file.
    again = run(resources, ["audit_bundle"], WEEK_KEY).asset_materializations_for_node("audit_bundle")[0]
    assert again.metadata["bundle"].value == path and again.metadata["new_file"].value is False


def test_the_ranking_reproducible_check_passes_on_a_built_checkpoint_and_fails_on_stale_snapshots(pipeline_copy):  # noqa: F811
    import polars as pl

    from tests.conftest import HOUR_KEY
    from tests.test_assets import run

    _, resources, lake, _ = pipeline_copy
    checks = {c.check_name: c for c in run(resources, ["checkpoints"], WEEK_KEY).get_asset_check_evaluations()}
    assert checks["ranking_reproducible"].passed
    assert checks["ranking_reproducible"].metadata["first_difference"].value == "none"

    # A snapshot that no longer matches its scores (edited, or scores re-computed after it).
    stale = lake.read("snapshots", HOUR_KEY)
    lake.write("snapshots", stale.with_columns(pl.when(pl.col("model_id") == stale["model_id"][0]).then(pl.col("value") + 1).otherwise(pl.col("value")).alias("value")), HOUR_KEY)
    result = run(resources, ["checkpoints", "audit_bundle"], WEEK_KEY, raise_on_error=False)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["ranking_reproducible"].passed
    assert checks["ranking_reproducible"].metadata["first_difference"].value.startswith("snapshots: row ")
    assert "column value" in checks["ranking_reproducible"].metadata["first_difference"].value
    # The check is blocking: no bundle is built on a checkpoint that does not reproduce.
    assert not result.asset_materializations_for_node("audit_bundle")


def test_the_cli_writes_and_verifies_a_bundle_exit_0_or_1_with_the_first_difference(pipeline_copy, capsys, tmp_path):  # noqa: F811
    from coordinator_dagster.cli.main import main

    _, _, lake, _ = pipeline_copy
    assert main(["audit", "bundle", CID, "--home", str(lake.home)]) == 0
    path = capsys.readouterr().out.split(": ", 1)[1].strip()
    assert main(["audit", "verify", path]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(f"{CID}: verified") and "ok: scores: " in out
    members = members_of(path)
    data = bytearray(members["scores.parquet"])
    data[100] ^= 0x01
    bad = rewrite(path, {**members, "scores.parquet": bytes(data)}, tmp_path / "bad.zip")
    assert main(["audit", "verify", str(bad)]) == 1
    assert "FAILED: scores.parquet: sha256" in capsys.readouterr().out
    assert main(["audit", "bundle", "CKP-nope", "--home", str(lake.home)]) == 1


def test_contracts_a_bundle_cannot_re_derive_are_refused_with_the_reason(pipeline_copy):  # noqa: F811
    # (Checkpoints of the production rule, TopKPerGroup, are bundled: tests/test_audit_group_bundle.py.)
    _, _, lake, _ = pipeline_copy
    unnamed = type(default_contract())(**{**dict(default_contract()), "scoring_function": lambda prediction, ground_truth: None})
    with pytest.raises(bundle.NotBundled, match="not importable by name"):
        bundle.build_bundle(lake, unnamed, CID, NOW)
    assert not (lake.home / "audit_bundles").exists()

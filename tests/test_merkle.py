"""Merkle tamper evidence: the scheme's formulas, proofs for every cycle, tampering, the CLI."""

import copy
import datetime as dt
import hashlib
import json
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest

from coordinator_dagster.scoring.merkle import (
    build_checkpoint_tree,
    canonical_snapshot,
    leaf_hash,
    merkle_path,
    merkle_root,
    proof_for,
    verify_proof,
)

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 20, 10, tzinfo=UTC)


def h(text: str) -> str:
    """The scheme's H, written independently of the module."""
    return hashlib.sha256(text.encode()).hexdigest()


def row(model_id="m1", start=START, count=12, summary=None, **extra):
    summary = {"value": 0.25, "ic": -0.5, "n": 3} if summary is None else summary
    return {
        "model_id": model_id,
        "period_start": start,
        "period_end": start + dt.timedelta(hours=1),
        "prediction_count": count,
        "result_summary": json.dumps(summary, sort_keys=True),  # as the lake stores it
        **extra,
    }


def period(cycles: int, models: int) -> list[dict]:
    rows = []
    for c in range(cycles):
        for m in reversed(range(models)):  # unsorted on purpose
            summary = {"value": round(0.1 * m - 0.03 * c, 6), "hit_rate": 0.5 + m / 100}
            rows.append(row(f"model-{m}", START + dt.timedelta(hours=c), 10 + m + c, summary))
    return rows


def flip(text: str, at: int = 0) -> str:
    """The same (hex or digit) string with one character changed."""
    return text[:at] + ("1" if text[at] == "0" else "0") + text[at + 1 :]


# --- the formulas, pinned by hand ---------------------------------------------------------


def test_canonical_snapshot_exact_text_and_leaf():
    r = row(extra_column="ignored", scored_count=9)
    # Timestamps as Python's isoformat() of the aware UTC datetime, as the reference hashes them.
    assert START.isoformat() == "2026-11-20T10:00:00+00:00"
    expected = (
        '{"model_id":"m1","period_end":"2026-11-20T11:00:00+00:00","period_start":"2026-11-20T10:00:00+00:00",'
        '"prediction_count":12,"result_summary":{"ic":-0.5,"n":3,"value":0.25}}'
    )
    assert canonical_snapshot(r) == expected
    assert leaf_hash(r) == h(expected)
    # The same digest as `printf '%s' "$expected" | sha256sum`, pinned so that neither side can drift.
    assert leaf_hash(r) == "d1308a56246183d50b39ed349d0c761590ea91261fa0fea5de78457e262020a9"


def test_leaf_is_the_reference_payload_hashed():
    # The reference builds the payload from the datetimes with isoformat() and dumps it with
    # sort_keys and no whitespace; the same steps written out here give the same leaf.
    r = row()
    payload = {
        "model_id": r["model_id"],
        "period_start": r["period_start"].isoformat(),
        "period_end": r["period_end"].isoformat(),
        "prediction_count": r["prediction_count"],
        "result_summary": json.loads(r["result_summary"]),
    }
    assert leaf_hash(r) == hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def test_one_leaf_is_its_own_root():
    a = h("a")
    assert merkle_root([a]) == a
    assert merkle_path([a], 0) == []
    assert merkle_root([]) is None


def test_two_leaves():
    a, b = h("a"), h("b")
    assert merkle_root([a, b]) == h(a + b)
    assert merkle_path([a, b], 0) == [{"sibling": b, "side": "right"}]
    assert merkle_path([a, b], 1) == [{"sibling": a, "side": "left"}]


def test_three_leaves_duplicate_the_odd_node():
    a, b, c = h("a"), h("b"), h("c")
    ab, cc = h(a + b), h(c + c)
    assert merkle_root([a, b, c]) == h(ab + cc)
    assert merkle_path([a, b, c], 2) == [{"sibling": c, "side": "right"}, {"sibling": ab, "side": "left"}]
    assert merkle_path([a, b, c], 1) == [{"sibling": a, "side": "left"}, {"sibling": cc, "side": "right"}]


def test_five_leaves_odd_at_two_levels():
    leaves = [h(x) for x in "abcde"]
    l1 = [h(leaves[0] + leaves[1]), h(leaves[2] + leaves[3]), h(leaves[4] + leaves[4])]
    l2 = [h(l1[0] + l1[1]), h(l1[2] + l1[2])]
    assert merkle_root(leaves) == h(l2[0] + l2[1])


def test_two_cycles_chain_and_checkpoint_root_by_hand():
    rows = [
        row("b", START), row("a", START),  # cycle 1: leaves sorted by model_id → a, b
        row("z", START + dt.timedelta(hours=1)),  # cycle 2: a single leaf
    ]
    leaf = {(r["model_id"], r["period_start"]): h(json.dumps({
        "model_id": r["model_id"],
        "period_start": r["period_start"].isoformat(),
        "period_end": r["period_end"].isoformat(),
        "prediction_count": r["prediction_count"],
        "result_summary": json.loads(r["result_summary"]),
    }, sort_keys=True, separators=(",", ":"))) for r in rows}
    root1 = h(leaf["a", START] + leaf["b", START])
    root2 = leaf["z", START + dt.timedelta(hours=1)]
    chained1 = root1  # the first cycle has no predecessor: chained as itself (the reference's rule)
    chained2 = h(chained1 + root2)

    tree = build_checkpoint_tree(list(reversed(rows)))  # input order must not matter
    first, second = tree.cycles
    assert (first.period_start, first.model_ids, first.root) == ("2026-11-20T10:00:00+00:00", ("a", "b"), root1)
    assert (first.previous_chained_root, first.chained_root) == ("", chained1)
    assert (second.root, second.previous_chained_root, second.chained_root) == (root2, chained1, chained2)
    assert tree.checkpoint_root == h(chained1 + chained2)  # the chained roots in cycle order


def test_checkpoint_tree_keeps_cycle_order_not_sorted_hashes():
    tree = build_checkpoint_tree(period(3, 2))
    chained = [c.chained_root for c in tree.cycles]
    assert [c.period_start for c in tree.cycles] == sorted(c.period_start for c in tree.cycles)
    assert tree.checkpoint_root == h(h(chained[0] + chained[1]) + h(chained[2] + chained[2]))


def test_chain_starts_fresh_in_every_period():
    later = [dict(r, period_start=r["period_start"] + dt.timedelta(days=7),
                  period_end=r["period_end"] + dt.timedelta(days=7)) for r in period(1, 2)]
    tree = build_checkpoint_tree(later)
    assert tree.cycles[0].previous_chained_root == ""
    assert tree.checkpoint_root == tree.cycles[0].chained_root == tree.cycles[0].root


def test_empty_period_has_no_root_and_duplicates_are_refused():
    assert build_checkpoint_tree([]).checkpoint_root is None
    with pytest.raises(ValueError, match="two snapshots"):
        build_checkpoint_tree([row("a"), row("a")])


# --- canonicalisation ---------------------------------------------------------------------


def test_canonical_form_ignores_key_order_and_timezone_spelling():
    base = row(summary={"b": {"y": 1, "x": 2.5}, "a": [1, 2]})
    reordered = {k: base[k] for k in reversed(list(base))}
    reordered["result_summary"] = '{"a": [1, 2], "b": {"x": 2.5, "y": 1}}'
    paris = ZoneInfo("Europe/Paris")
    spellings = [
        dict(base, period_start=START.astimezone(paris), period_end=(START + dt.timedelta(hours=1)).astimezone(paris)),
        dict(base, period_start="2026-11-20T10:00:00Z", period_end="2026-11-20T11:00:00+00:00"),
        dict(base, period_start="2026-11-20T11:00:00+01:00", period_end="2026-11-20 11:00:00"),
        dict(base, period_start=START.replace(tzinfo=None), period_end=dt.datetime(2026, 11, 20, 11)),  # naive = UTC
        dict(base, result_summary={"b": {"x": 2.5, "y": 1}, "a": [1, 2]}),  # already parsed
    ]
    assert all(canonical_snapshot(s) == canonical_snapshot(base) for s in [reordered, *spellings])
    assert '"period_start":"2026-11-20T10:00:00+00:00"' in canonical_snapshot(base)


def test_polars_rows_hash_like_python_rows():
    import polars as pl

    from coordinator_dagster.lake import schemas

    rows = period(2, 3)
    frame = pl.DataFrame([dict(r, scored_count=1, failed_count=0, value=0.0) for r in rows], schema=schemas.SNAPSHOTS)
    assert build_checkpoint_tree(frame) == build_checkpoint_tree(rows)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(bad):
    with pytest.raises(ValueError, match="not allowed"):
        canonical_snapshot(dict(row(), result_summary={"value": bad}))
    with pytest.raises(ValueError, match="not allowed"):
        leaf_hash(dict(row(), result_summary=json.dumps({"deep": [{"v": bad}]})))  # "NaN"/"Infinity" text
    with pytest.raises(ValueError):
        build_checkpoint_tree([dict(row(), result_summary=json.dumps({"value": bad}))])


@pytest.mark.parametrize(
    "change",
    [
        {"prediction_count": 1.0}, {"prediction_count": True}, {"prediction_count": "12"},
        {"period_start": "yesterday"}, {"period_start": START + dt.timedelta(microseconds=5)},
        {"model_id": ""}, {"result_summary": "{not json"},
    ],
)
def test_bad_fields_are_refused(change):
    with pytest.raises(ValueError):
        canonical_snapshot(dict(row(), **change))


# --- proofs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("cycles", "models"), [(3, 5), (1, 1), (1, 3), (4, 2), (5, 7)])
def test_every_proof_verifies(cycles, models):
    tree = build_checkpoint_tree(period(cycles, models))
    assert len(tree.cycles) == cycles
    for c in range(cycles):
        for m in range(models):
            proof = proof_for(tree, f"model-{m}", START + dt.timedelta(hours=c))
            proof = json.loads(json.dumps(proof))  # survives the trip through JSON
            ok, reason = verify_proof(proof)
            assert ok, (c, m, reason)
            ok, reason = verify_proof(proof, expected_root=tree.checkpoint_root)
            assert ok and "matches the expected root" in reason
            assert proof["previous_chained_root"] == ("" if c == 0 else tree.cycles[c - 1].chained_root)


def test_proof_format():
    tree = build_checkpoint_tree(period(3, 5))
    proof = proof_for(tree, "model-2", "2026-11-20T11:00:00Z")
    assert list(proof) == [
        "scheme", "snapshot", "leaf", "leaf_path", "cycle_root", "previous_chained_root",
        "chained_root", "checkpoint_path", "checkpoint_root",
    ]
    assert proof["scheme"] == "coordinator-merkle-v2"
    assert proof["snapshot"] == {
        "model_id": "model-2", "period_start": "2026-11-20T11:00:00+00:00", "period_end": "2026-11-20T12:00:00+00:00",
        "prediction_count": 13, "result_summary": {"hit_rate": 0.52, "value": 0.17},
    }
    assert proof["leaf"] == h(json.dumps(proof["snapshot"], sort_keys=True, separators=(",", ":")))
    assert proof["checkpoint_root"] == tree.checkpoint_root
    assert len(proof["leaf_path"]) == 3 and len(proof["checkpoint_path"]) == 2  # 5 leaves, 3 cycles
    with pytest.raises(KeyError):
        proof_for(tree, "model-9", START)
    with pytest.raises(KeyError):
        proof_for(tree, "model-1", START - dt.timedelta(hours=1))


@pytest.fixture
def proof():
    tree = build_checkpoint_tree(period(3, 5))
    return proof_for(tree, "model-4", START + dt.timedelta(hours=2))  # the odd leaf of the odd cycle


def tampered(proof, edit):
    bad = copy.deepcopy(proof)
    edit(bad)
    return verify_proof(bad)


@pytest.mark.parametrize(
    ("edit", "step"),
    [
        (lambda p: p["snapshot"].update(prediction_count=p["snapshot"]["prediction_count"] + 1), "leaf:"),
        (lambda p: p["snapshot"]["result_summary"].update(value=0.41), "leaf:"),
        (lambda p: p["snapshot"]["result_summary"].update(extra=1), "leaf:"),
        (lambda p: p["snapshot"].update(model_id="model-3"), "leaf:"),
        (lambda p: p["snapshot"].update(period_end="2026-11-20T13:00:01+00:00"), "leaf:"),
        (lambda p: p.update(leaf=flip(p["leaf"])), "leaf:"),
        (lambda p: p["leaf_path"][0].update(sibling=flip(p["leaf_path"][0]["sibling"], 5)), "leaf_path:"),
        (lambda p: p["leaf_path"][-1].update(sibling=flip(p["leaf_path"][-1]["sibling"], 63)), "leaf_path:"),
        # (the side of a self-paired step is immaterial: H(x + x) either way; this one has a real sibling)
        (lambda p: p["leaf_path"][-1].update(side="left" if p["leaf_path"][-1]["side"] == "right" else "right"), "leaf_path:"),
        (lambda p: p["leaf_path"].pop(), "leaf_path:"),
        (lambda p: p.update(cycle_root=flip(p["cycle_root"], 10)), "leaf_path:"),
        (lambda p: p.update(previous_chained_root=flip(p["previous_chained_root"], 3)), "chain:"),
        (lambda p: p.update(previous_chained_root=""), "chain:"),
        (lambda p: p.update(chained_root=flip(p["chained_root"], 20)), "chain:"),
        (lambda p: p["checkpoint_path"][0].update(sibling=flip(p["checkpoint_path"][0]["sibling"], 7)), "checkpoint_path:"),
        (lambda p: p["checkpoint_path"].append(dict(p["checkpoint_path"][0])), "checkpoint_path:"),
        (lambda p: p.update(checkpoint_root=flip(p["checkpoint_root"], 40)), "checkpoint_path:"),
    ],
)
def test_any_tampering_fails_and_names_the_step(proof, edit, step):
    assert verify_proof(proof)[0]
    ok, reason = tampered(proof, edit)
    assert not ok
    assert reason.startswith(step), reason


def test_flipping_any_single_character_of_the_snapshot_values_fails(proof):
    summary_text = json.dumps(proof["snapshot"]["result_summary"], sort_keys=True)
    for i, char in enumerate(summary_text):
        changed = summary_text[:i] + ("7" if char != "7" else "8") + summary_text[i + 1 :]
        try:
            parsed = json.loads(changed)
        except ValueError:
            continue  # not JSON any more: nothing to verify
        ok, reason = tampered(proof, lambda p: p["snapshot"].update(result_summary=parsed))
        assert not ok and reason.startswith("leaf:"), (changed, reason)
    count = str(proof["snapshot"]["prediction_count"])
    for i in range(len(count)):
        ok, reason = tampered(proof, lambda p: p["snapshot"].update(prediction_count=int(flip(count, i))))
        assert not ok and reason.startswith("leaf:")
    steps = {"leaf": "leaf:", "cycle_root": "leaf_path:", "chained_root": "chain:", "checkpoint_root": "checkpoint_path:"}
    for key, step in steps.items():
        for i in range(64):
            ok, reason = tampered(proof, lambda p: p.update({key: flip(p[key], i)}))
            assert not ok and reason.startswith(step), (key, i, reason)
    for name in ("leaf_path", "checkpoint_path"):
        for n, step in enumerate(proof[name]):
            for i in range(64):
                ok, reason = tampered(proof, lambda p: p[name][n].update(sibling=flip(step["sibling"], i)))
                assert not ok and reason.startswith(f"{name}:"), (name, n, i, reason)


def test_wrong_expected_root_fails(proof):
    other = build_checkpoint_tree(period(3, 4)).checkpoint_root
    ok, reason = verify_proof(proof, expected_root=other)
    assert not ok and reason.startswith("expected root:")
    assert verify_proof(proof, expected_root="0x" + proof["checkpoint_root"].upper())[0]
    ok, reason = verify_proof(proof, expected_root="not-hex")
    assert not ok and "expected root" in reason


def test_a_proof_from_one_checkpoint_does_not_verify_against_another():
    first, second = build_checkpoint_tree(period(3, 5)), build_checkpoint_tree(period(2, 5))
    ok, reason = verify_proof(proof_for(first, "model-0", START), expected_root=second.checkpoint_root)
    assert not ok and reason.startswith("expected root:")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda p: p.pop("leaf_path"), "lacks leaf_path"),
        (lambda p: p.pop("snapshot"), "lacks snapshot"),
        (lambda p: p.update(scheme="other-v2"), "unknown scheme"),
        (lambda p: p.update(scheme="coordinator-merkle-v1"), "unknown scheme"),
        (lambda p: p.update(leaf="zz" * 32), "leaf is not"),
        (lambda p: p.update(leaf=p["leaf"].upper()), "leaf is not"),
        (lambda p: p.update(cycle_root=p["cycle_root"][:-1]), "cycle_root is not"),
        (lambda p: p.update(chained_root=None), "chained_root is not"),
        (lambda p: p.update(previous_chained_root=12), "previous_chained_root"),
        (lambda p: p["leaf_path"][0].update(side="up"), "side must be"),
        (lambda p: p["leaf_path"][0].update(sibling="abc"), "sibling is not"),
        (lambda p: p["leaf_path"][0].pop("side"), "exactly 'sibling' and 'side'"),
        (lambda p: p.update(checkpoint_path={"sibling": "x"}), "checkpoint_path must be a list"),
        (lambda p: p["checkpoint_path"].append("step"), "checkpoint_path[2]"),
        (lambda p: p.update(snapshot=[1, 2]), "snapshot must be an object"),
        (lambda p: p["snapshot"].update(scored_count=3), "exactly the fields"),
        (lambda p: p["snapshot"].pop("period_end"), "exactly the fields"),
    ],
)
def test_malformed_proofs_are_invalid_not_errors(proof, edit, words):
    ok, reason = tampered(proof, edit)
    assert not ok and reason.startswith("malformed proof:") and words in reason, reason


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda p: p["snapshot"].update(period_start="soon"), "ISO-8601"),
        (lambda p: p["snapshot"].update(prediction_count="13"), "integer"),
        (lambda p: p["snapshot"].update(model_id=None), "model_id"),
        (lambda p: p["snapshot"]["result_summary"].update(value=float("nan")), "not allowed"),
        (lambda p: p["snapshot"]["result_summary"].update(value={1, 2}), "JSON-serialisable"),
    ],
)
def test_unhashable_snapshots_are_invalid_not_errors(proof, edit, words):
    ok, reason = tampered(proof, edit)
    assert not ok and reason.startswith("snapshot:") and words in reason, reason


@pytest.mark.parametrize(
    ("field", "spelling"),
    [
        ("period_start", "2026-11-20U12:00:00+00:00"),  # any separator parses; only T is canonical
        ("period_start", "2026-11-20 12:00:00+00:00"),
        ("period_start", "2026-11-20T12:00:00Z"),  # the same instant, this node's v1 spelling
        ("period_start", "2026-11-20T13:00:00+01:00"),
        ("period_start", "2026-11-20T12:00:00"),
        ("period_end", "2026-11-20T13:00:00.000+00:00"),
        ("period_end", "20261120T130000+0000"),
        ("result_summary", '{"hit_rate": 0.54, "value": 0.34}'),  # the summary as text, not an object
    ],
)
def test_a_snapshot_not_written_canonically_is_refused_even_if_it_hashes(proof, field, spelling):
    assert proof["snapshot"]["period_start"] == "2026-11-20T12:00:00+00:00"
    bad = copy.deepcopy(proof)
    bad["snapshot"][field] = spelling
    # Normalising the spelling would give the proof's own leaf; the verifier refuses instead.
    assert leaf_hash(bad["snapshot"]) == proof["leaf"]
    ok, reason = verify_proof(bad)
    assert not ok and reason.startswith(f"snapshot: {field} is ") and "not in canonical form" in reason, reason


def test_the_verdict_prints_only_hashed_values_as_hashed(proof):
    ok, reason = verify_proof(proof, expected_root=proof["checkpoint_root"])
    assert ok
    assert reason == (
        f'snapshot of "model-4" for 2026-11-20T12:00:00+00:00 is in checkpoint root {proof["checkpoint_root"]} '
        "(matches the expected root)"
    )
    # A model id cannot smuggle text into the verdict: it is printed JSON-quoted.
    tree = build_checkpoint_tree([row('x"\nvalid: fake')])
    ok, reason = verify_proof(proof_for(tree, 'x"\nvalid: fake', START))
    assert ok and "\n" not in reason and reason.startswith('snapshot of "x\\"\\nvalid: fake" for ')


@pytest.mark.parametrize("thing", [None, [], "proof", 3, {}])
def test_non_proofs_are_invalid(thing):
    ok, reason = verify_proof(thing)
    assert not ok and reason.startswith("malformed proof:")


# --- the CLI ------------------------------------------------------------------------------


def cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "coordinator_dagster.cli.main", "verify-proof", *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.process
def test_cli_valid_tampered_stdin_wrapped_and_garbage(tmp_path, proof):
    good = tmp_path / "proof.json"
    good.write_text(json.dumps(proof, indent=2))
    done = cli(str(good))
    assert done.returncode == 0 and done.stdout.startswith("valid: "), done
    assert "model-4" in done.stdout

    pinned = cli(str(good), "--root", proof["checkpoint_root"])
    assert pinned.returncode == 0 and "matches the expected root" in pinned.stdout
    wrong = cli(str(good), "--root", "0" * 64)
    assert wrong.returncode == 1 and wrong.stdout.startswith("INVALID: expected root:")

    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(dict(proof, snapshot=dict(proof["snapshot"], prediction_count=999))))
    done = cli(str(bad))
    assert done.returncode == 1 and done.stdout.startswith("INVALID: leaf:"), done

    done = cli("-", stdin=json.dumps(proof))
    assert done.returncode == 0 and done.stdout.startswith("valid: "), done

    wrapped = {"checkpoint_id": "CKP-2026-11-15", "proof": proof}
    done = cli("-", stdin=json.dumps(wrapped))
    assert done.returncode == 0 and done.stdout.startswith("valid: "), done

    for garbage in ["this is not json", "", "{\"proof\": "]:
        done = cli("-", stdin=garbage)
        assert done.returncode == 2 and "not JSON" in done.stderr and done.stdout == "", done
    done = cli(str(tmp_path / "missing.json"))
    assert done.returncode == 2 and "cannot read" in done.stderr

    done = cli("-", stdin="[1, 2, 3]")  # JSON, but not a proof
    assert done.returncode == 1 and done.stdout.startswith("INVALID: malformed proof:")


@pytest.mark.process
def test_cli_refuses_a_non_canonical_timestamp_and_an_answer_naming_another_root(tmp_path, proof):
    # A "U" for the "T": the timestamp parses and normalises to the hashed one, yet it is not the
    # text that was hashed, so the proof is refused (it used to verify).
    spelled = copy.deepcopy(proof)
    spelled["snapshot"]["period_start"] = spelled["snapshot"]["period_start"].replace("T", "U")
    done = cli("-", "--root", proof["checkpoint_root"], stdin=json.dumps(spelled))
    assert done.returncode == 1, done
    assert done.stdout.startswith('INVALID: snapshot: period_start is "2026-11-20U12:00:00+00:00", not in canonical form'), done

    answer = {"checkpoint_id": "CKP-2026-11-15", "merkle_root": proof["checkpoint_root"], "proof": proof}
    done = cli("-", stdin=json.dumps(answer))
    assert done.returncode == 0 and done.stdout == (
        f'valid: snapshot of "model-4" for 2026-11-20T12:00:00+00:00 is consistent with checkpoint root '
        f'{proof["checkpoint_root"]} (not compared with a published root)\n'
    ), done
    done = cli("-", stdin=json.dumps(dict(answer, merkle_root="0" * 64)))
    assert done.returncode == 1 and done.stdout.startswith("INVALID: answer: its merkle_root"), done


@pytest.mark.process
def test_cli_help_lists_what_it_checks():
    done = subprocess.run(
        [sys.executable, "-m", "coordinator_dagster.cli.main", "verify-proof", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    for words in ("YYYY-MM-DDTHH:MM:SS+00:00", "leaf_path", "previous_chained_root", "--root", "merkle_root", "coordinator-merkle-v2"):
        assert words in done.stdout, words

"""Tamper evidence: Merkle trees over snapshots, checkpoint roots and proofs that verify offline.

What belongs here: the hashing scheme and nothing else. Pure functions over plain values (lists
of dicts, strings); no Dagster, no lake, no clock. Assets and the report API call
`build_checkpoint_tree` on the snapshot rows of one checkpoint period and hand `proof_for`'s
answer to participants, who check it with `verify_proof` (or `coordinator verify-proof FILE`)
without access to the node. (Over 400 lines only because this docstring is the scheme's full
specification, which participants read to write their own verifier.)

Scheme "coordinator-merkle-v2": the reference engine's hashing (same leaf text, same trees, same
chain step), with per-checkpoint chains and proofs that verify for every cycle (the reference's
only verified for the first). v1, this node's earlier scheme, wrote timestamps as `...Z` and
started every chain with H("" + root_1); its roots and proofs do not verify as v2.

`H(text)` below is the lowercase hex SHA-256 digest of `text` encoded as UTF-8; every hash is
such a 64-character lowercase hex string, and hashes are combined as *text* (hex strings
concatenated), never as raw bytes.

1. Canonical snapshot. Exactly five fields of a snapshot, as a JSON object:
     model_id          string
     period_start      string "YYYY-MM-DDTHH:MM:SS+00:00": Python's `isoformat()` of the aware
                       UTC datetime, as the reference writes it (UTC, whole seconds)
     period_end        string "YYYY-MM-DDTHH:MM:SS+00:00"
     prediction_count  integer
     result_summary    the JSON *value* of the summary (the lake stores it as a JSON string; it is
                       parsed and embedded, so its keys are sorted like the rest)
   serialised as Python's `json.dumps(obj, sort_keys=True, separators=(",", ":"))`: keys sorted
   by code point at every depth, no whitespace, non-ASCII escaped as \\uXXXX (ensure_ascii),
   floats written as Python's shortest round-trip repr (`0.1`, `1e-07`, `2.0`, `1e+20`).
   Datetimes are converted to UTC (a naive datetime or a string without offset is taken as UTC);
   a value with fractional seconds is refused rather than truncated. NaN and ±Infinity are not
   JSON and are refused (ValueError) wherever they appear.
2. Leaf = H(canonical snapshot).
3. Cycle = one snapshot window: all snapshots sharing one period_start. Its leaves are ordered by
   model_id (code-point order). Tree: each level is reduced pairwise, parent = H(left + right);
   a level of odd length pairs its last node with itself (parent = H(x + x)); repeat until one
   node is left. One leaf: the root is the leaf itself. No leaves: no root (the cycle is skipped).
4. Chain, per checkpoint period, cycles in period_start order, starting fresh in every period:
     chained_1 = root_1,   chained_k = H(chained_{k-1} + root_k)
   (the reference's rule: a cycle without a previous chained root is chained as itself).
5. Checkpoint root = the tree of step 3 over [chained_1, ..., chained_n] in cycle order (not
   sorted).

Proof (JSON object), for one snapshot in one checkpoint:
    {"scheme": "coordinator-merkle-v1",
     "snapshot": {the five canonical fields, result_summary as an object},
     "leaf": hex,
     "leaf_path": [{"sibling": hex, "side": "left" | "right"}, ...],   leaf level first
     "cycle_root": hex,
     "previous_chained_root": hex, or "" for the first cycle of the period,
     "chained_root": hex,
     "checkpoint_path": [{"sibling": hex, "side": "left" | "right"}, ...],
     "checkpoint_root": hex}
A path step says on which side the sibling sits: "left" → node = H(sibling + node), "right" →
node = H(node + sibling). To verify: (a) the snapshot must be written exactly in canonical form
(its JSON text, keys sorted and no spaces, is the canonical text: a timestamp spelled any other
way, e.g. `...Z` or a `U` for the `T`, is refused rather than normalised) and leaf = H(that text)
must equal "leaf"; (b) fold leaf_path from the leaf, the result must equal "cycle_root"; (c) the
chain step (step 4) from previous_chained_root and cycle_root must equal "chained_root"; (d) fold
checkpoint_path from chained_root, the result must equal "checkpoint_root"; (e) optionally,
checkpoint_root must equal the root published for the checkpoint (e.g. on chain) - without (e) a
proof only shows internal consistency. The reference's verify_merkle.py performs (a) without the
canonical-form check, (b) and (c), on the same text and hashes.

Limits inherited from the scheme: duplicating the odd node means the trees do not commit to
their leaf count ([a, b, c] and [a, b, c, c] share a root), the side of a step whose sibling is
the node itself is immaterial (H(x + x) either way), and leaves and inner nodes are not
domain-separated. A proof still binds the snapshot's five fields to the checkpoint root.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SCHEME = "coordinator-merkle-v2"
SNAPSHOT_FIELDS = ("model_id", "period_start", "period_end", "prediction_count", "result_summary")
PROOF_KEYS = (
    "scheme", "snapshot", "leaf", "leaf_path", "cycle_root", "previous_chained_root",
    "chained_root", "checkpoint_path", "checkpoint_root",
)
_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_hex(text: str) -> str:
    """H(text): lowercase hex SHA-256 of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_hash(value: object) -> bool:
    """True for a 64-character lowercase hex string (the only form hashes take in this scheme)."""
    return isinstance(value, str) and _HEX.fullmatch(value) is not None


# --- canonical form -------------------------------------------------------------------------


def canonical_timestamp(value: dt.datetime | str) -> str:
    """`YYYY-MM-DDTHH:MM:SS+00:00` (the `isoformat()` of the aware UTC datetime), from an
    aware/naive (=UTC) datetime or an ISO-8601 string."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    if not isinstance(value, dt.datetime):
        raise ValueError(f"expected a datetime or an ISO-8601 string, got {type(value).__name__}")
    value = value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    if value.microsecond:
        raise ValueError(f"{value.isoformat()} has fractional seconds; the canonical form has whole seconds")
    return value.isoformat()


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} holds {value!r}; NaN and infinities are not allowed in a snapshot")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")


def canonical_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The five hashed fields of a snapshot row, normalised (other keys of the row are ignored).

    Raises ValueError when a field is missing or cannot be canonicalised.
    """
    missing = [name for name in SNAPSHOT_FIELDS if name not in row]
    if missing:
        raise ValueError(f"snapshot lacks {', '.join(missing)}")
    model_id = row["model_id"]
    if not isinstance(model_id, str) or not model_id:
        raise ValueError(f"model_id must be a non-empty string, got {model_id!r}")
    count = row["prediction_count"]
    if isinstance(count, bool | float | str):
        raise ValueError(f"prediction_count must be an integer, got {count!r}")
    try:
        count = operator.index(count)  # int, or an integer scalar such as numpy.int64
    except TypeError:
        raise ValueError(f"prediction_count must be an integer, got {count!r}") from None
    summary = row["result_summary"]
    if isinstance(summary, str | bytes):
        try:
            summary = json.loads(summary)
        except json.JSONDecodeError as exc:
            raise ValueError(f"result_summary is not valid JSON: {exc}") from None
    _check_finite(summary, "result_summary")
    return {
        "model_id": model_id,
        "period_start": canonical_timestamp(row["period_start"]),
        "period_end": canonical_timestamp(row["period_end"]),
        "prediction_count": count,
        "result_summary": summary,
    }


def canonical_snapshot(row: Mapping[str, Any]) -> str:
    """The canonical JSON text of a snapshot (step 1 of the scheme)."""
    fields = canonical_fields(row)
    try:
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:  # a value json cannot write (e.g. a set inside result_summary)
        raise ValueError(f"snapshot is not JSON-serialisable: {exc}") from None


def leaf_hash(row: Mapping[str, Any]) -> str:
    """Leaf = H(canonical snapshot)."""
    return sha256_hex(canonical_snapshot(row))


# --- trees ----------------------------------------------------------------------------------


def _checked(hashes: Sequence[str]) -> list[str]:
    hashes = list(hashes)
    for i, h in enumerate(hashes):
        if not is_hash(h):
            raise ValueError(f"hash #{i} ({h!r}) is not 64 lowercase hex characters")
    return hashes


def _next_level(level: list[str]) -> list[str]:
    return [sha256_hex(level[i] + (level[i + 1] if i + 1 < len(level) else level[i])) for i in range(0, len(level), 2)]


def merkle_root(hashes: Sequence[str]) -> str | None:
    """Root of the tree over `hashes` in the given order; None for no hashes, the hash for one."""
    level = _checked(hashes)
    if not level:
        return None
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_path(hashes: Sequence[str], index: int) -> list[dict[str, str]]:
    """Siblings from hashes[index] up to the root, leaf level first (empty for a single hash)."""
    level = _checked(hashes)
    if not 0 <= index < len(level):
        raise IndexError(f"index {index} outside a tree of {len(level)} hash(es)")
    path: list[dict[str, str]] = []
    while len(level) > 1:
        if index % 2:
            path.append({"sibling": level[index - 1], "side": "left"})
        else:  # the last node of an odd level is its own sibling
            path.append({"sibling": level[index + 1] if index + 1 < len(level) else level[index], "side": "right"})
        level = _next_level(level)
        index //= 2
    return path


def fold_path(start: str, path: Iterable[Mapping[str, str]]) -> str:
    """Apply a path to a hash: "left" → H(sibling + node), "right" → H(node + sibling)."""
    node = start
    for step in path:
        node = sha256_hex(step["sibling"] + node if step["side"] == "left" else node + step["sibling"])
    return node


def chain(previous_chained_root: str, cycle_root: str) -> str:
    """chained_k = H(chained_{k-1} + root_k); the first cycle of a period ("" before it) is
    chained as its own root, as the reference chains a cycle without a predecessor."""
    return sha256_hex(previous_chained_root + cycle_root) if previous_chained_root else cycle_root


# --- checkpoint trees -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    """One snapshot window of a checkpoint period, with its place in the chain."""

    period_start: str  # canonical timestamp
    model_ids: tuple[str, ...]  # sorted; model_ids[i] owns leaves[i]
    leaves: tuple[str, ...]
    snapshots: tuple[dict[str, Any], ...]  # canonical fields, same order as leaves
    root: str
    previous_chained_root: str  # "" for the first cycle
    chained_root: str


@dataclass(frozen=True)
class CheckpointTree:
    """Every cycle of one checkpoint period, in period_start order, and the checkpoint root."""

    cycles: tuple[Cycle, ...]
    checkpoint_root: str | None  # None when the period has no snapshots

    @property
    def chained_roots(self) -> list[str]:
        return [c.chained_root for c in self.cycles]

    def cycle(self, period_start: dt.datetime | str) -> Cycle:
        key = canonical_timestamp(period_start)
        for c in self.cycles:
            if c.period_start == key:
                return c
        raise KeyError(f"no cycle starts at {key}")


def build_checkpoint_tree(snapshot_rows: Iterable[Mapping[str, Any]]) -> CheckpointTree:
    """The tree over the snapshot rows of ONE checkpoint period (pass the period's rows only).

    Rows are dicts with at least the five hashed fields (lake rows as they are: extra columns are
    ignored, result_summary may be the stored JSON string); a polars frame works too (its
    `to_dicts()` is used). Raises ValueError for a row that cannot be canonicalised or for a
    model appearing twice in one cycle.
    """
    return chain_cycles(hash_cycles(snapshot_rows))


@dataclass(frozen=True)
class CycleLeaves:
    """One cycle's hashed leaves before chaining: what `hash_cycles` gives, so a caller that
    keeps them (per snapshot hour) re-hashes only the cycles whose snapshots changed."""

    period_start: str
    model_ids: tuple[str, ...]
    leaves: tuple[str, ...]
    snapshots: tuple[dict[str, Any], ...]
    root: str


def hash_cycles(snapshot_rows: Iterable[Mapping[str, Any]]) -> list[CycleLeaves]:
    """Steps 1–3 over the rows (any cycles; a polars frame works too), cycles in period_start order."""
    rows = snapshot_rows.to_dicts() if hasattr(snapshot_rows, "to_dicts") else snapshot_rows  # type: ignore[union-attr]
    by_cycle: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        fields = canonical_fields(row)
        cycle = by_cycle.setdefault(fields["period_start"], {})
        if fields["model_id"] in cycle:
            raise ValueError(f"model {fields['model_id']!r} has two snapshots starting {fields['period_start']}")
        cycle[fields["model_id"]] = fields
    hashed = []
    for period_start in sorted(by_cycle):  # fixed-width UTC timestamps sort chronologically
        members = by_cycle[period_start]
        model_ids = tuple(sorted(members))
        snapshots = tuple(members[m] for m in model_ids)
        leaves = tuple(leaf_hash(s) for s in snapshots)
        root = merkle_root(leaves)
        assert root is not None  # a cycle exists only because it has a snapshot
        hashed.append(CycleLeaves(period_start, model_ids, leaves, snapshots, root))
    return hashed


def chain_cycles(hashed: Iterable[CycleLeaves]) -> CheckpointTree:
    """Steps 4–5: the cycles of ONE checkpoint period (distinct period_starts) chained in
    period_start order, and the checkpoint root over the chained roots."""
    cycles: list[Cycle] = []
    previous = ""
    for c in sorted(hashed, key=lambda c: c.period_start):
        if cycles and cycles[-1].period_start == c.period_start:
            raise ValueError(f"two cycles start {c.period_start}")
        chained = chain(previous, c.root)
        cycles.append(Cycle(c.period_start, c.model_ids, c.leaves, c.snapshots, c.root, previous, chained))
        previous = chained
    return CheckpointTree(tuple(cycles), merkle_root([c.chained_root for c in cycles]))


def proof_for(tree: CheckpointTree, model_id: str, period_start: dt.datetime | str) -> dict[str, Any]:
    """A self-contained, JSON-able proof that this model's snapshot of this cycle is in the tree.

    Raises KeyError when the tree has no such cycle or the model has no snapshot in it.
    """
    cycles = tree.cycles
    cycle = tree.cycle(period_start)
    try:
        leaf_index = cycle.model_ids.index(model_id)
    except ValueError:
        raise KeyError(f"model {model_id!r} has no snapshot starting {cycle.period_start}") from None
    assert tree.checkpoint_root is not None
    return {
        "scheme": SCHEME,
        "snapshot": dict(cycle.snapshots[leaf_index]),
        "leaf": cycle.leaves[leaf_index],
        "leaf_path": merkle_path(cycle.leaves, leaf_index),
        "cycle_root": cycle.root,
        "previous_chained_root": cycle.previous_chained_root,
        "chained_root": cycle.chained_root,
        "checkpoint_path": merkle_path([c.chained_root for c in cycles], cycles.index(cycle)),
        "checkpoint_root": tree.checkpoint_root,
    }


# --- verification ---------------------------------------------------------------------------


def _path_problem(name: str, path: object) -> str | None:
    if not isinstance(path, list):
        return f"{name} must be a list of steps"
    for i, step in enumerate(path):
        if not isinstance(step, dict) or set(step) != {"sibling", "side"}:
            return f"{name}[{i}] must be an object with exactly 'sibling' and 'side'"
        if not is_hash(step["sibling"]):
            return f"{name}[{i}].sibling is not 64 lowercase hex characters"
        if step["side"] not in ("left", "right"):
            return f"{name}[{i}].side must be 'left' or 'right', got {step['side']!r}"
    return None


def _shape_problem(proof: object) -> str | None:
    if not isinstance(proof, dict):
        return f"a proof is a JSON object, got {type(proof).__name__}"
    missing = [k for k in PROOF_KEYS if k not in proof]
    if missing:
        return f"proof lacks {', '.join(missing)}"
    if proof["scheme"] != SCHEME:
        return f"unknown scheme {proof['scheme']!r} (this verifier knows {SCHEME!r})"
    snapshot = proof["snapshot"]
    if not isinstance(snapshot, dict):
        return "snapshot must be an object"
    if set(snapshot) != set(SNAPSHOT_FIELDS):
        return f"snapshot must have exactly the fields {', '.join(SNAPSHOT_FIELDS)}"
    for key in ("leaf", "cycle_root", "chained_root", "checkpoint_root"):
        if not is_hash(proof[key]):
            return f"{key} is not 64 lowercase hex characters"
    previous = proof["previous_chained_root"]
    if previous != "" and not is_hash(previous):
        return "previous_chained_root must be \"\" or 64 lowercase hex characters"
    return _path_problem("leaf_path", proof["leaf_path"]) or _path_problem("checkpoint_path", proof["checkpoint_path"])


def _spelling_problem(snapshot: Mapping[str, Any]) -> str | None:
    """Why a proof's snapshot is not written exactly in canonical form (None when it is).

    A verifier hashes the text it is shown, so a field spelled differently from the canonical
    text (a timestamp with `Z` or a `U` for the `T`, a result_summary given as a string) is
    refused instead of being normalised into something that verifies.
    """
    fields = canonical_fields(snapshot)
    for name in SNAPSHOT_FIELDS:
        given, canonical = snapshot[name], fields[name]
        if type(given) is not type(canonical) or json.dumps(given, sort_keys=True) != json.dumps(canonical, sort_keys=True):
            return f"{name} is {json.dumps(given, default=repr)}, not in canonical form (canonical: {json.dumps(canonical)})"
    return None


def _normalise_expected(root: str) -> str | None:
    text = root.strip().lower() if isinstance(root, str) else ""
    text = text[2:] if text.startswith("0x") else text
    return text if is_hash(text) else None


def verify_proof(proof: object, expected_root: str | None = None) -> tuple[bool, str]:
    """Recompute a proof from its own content; (ok, reason). Never raises on a malformed proof.

    With `expected_root` (hex, any case, optional 0x) the checkpoint root must also equal it:
    without it a valid answer only means the proof is internally consistent.
    """
    problem = _shape_problem(proof)
    if problem:
        return False, f"malformed proof: {problem}"
    assert isinstance(proof, dict)
    snapshot = proof["snapshot"]
    try:
        text = canonical_snapshot(snapshot)
        problem = _spelling_problem(snapshot)
    except (ValueError, RecursionError) as exc:
        return False, f"snapshot: {exc}"
    if problem:
        return False, f"snapshot: {problem}"
    leaf = sha256_hex(text)
    if leaf != proof["leaf"]:
        return False, f"leaf: the snapshot hashes to {leaf}, the proof says {proof['leaf']}"
    cycle_root = fold_path(leaf, proof["leaf_path"])
    if cycle_root != proof["cycle_root"]:
        return False, f"leaf_path: the leaf folds to {cycle_root}, the proof's cycle_root is {proof['cycle_root']}"
    chained = chain(proof["previous_chained_root"], cycle_root)
    if chained != proof["chained_root"]:
        rule = "H(previous_chained_root + cycle_root)" if proof["previous_chained_root"] else "cycle_root (first cycle)"
        return False, f"chain: {rule} is {chained}, the proof's chained_root is {proof['chained_root']}"
    checkpoint_root = fold_path(chained, proof["checkpoint_path"])
    if checkpoint_root != proof["checkpoint_root"]:
        return False, (
            f"checkpoint_path: the chained root folds to {checkpoint_root}, "
            f"the proof's checkpoint_root is {proof['checkpoint_root']}"
        )
    # Only hashed values are printed, exactly as hashed (the model id JSON-quoted, so no text in
    # it can pass for the verdict).
    what = f"snapshot of {json.dumps(snapshot['model_id'])} for {snapshot['period_start']}"
    if expected_root is not None:
        expected = _normalise_expected(expected_root)
        if expected is None:
            return False, f"expected root {expected_root!r} is not a 64-character hex hash"
        if checkpoint_root != expected:
            return False, f"expected root: the proof leads to {checkpoint_root}, expected {expected}"
        return True, f"{what} is in checkpoint root {checkpoint_root} (matches the expected root)"
    return True, f"{what} is consistent with checkpoint root {checkpoint_root} (not compared with a published root)"

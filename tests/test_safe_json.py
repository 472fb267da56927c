"""Bounded JSON decoding (coordinator_dagster/models/safe_json.py), with worked examples."""

from __future__ import annotations

import pytest

from coordinator_dagster.models.safe_json import UnsafeJSON, loads_bounded, nesting_depth


def test_depth_counts_arrays_and_objects_but_not_brackets_inside_strings():
    assert nesting_depth(b'{"a": [1, {"b": []}]}') == 4
    assert nesting_depth(b'{"a": "[[[[{{{{", "b": "\\"[["}') == 1  # escaped quote included
    assert nesting_depth(b"42") == 0


def test_what_is_refused_and_why():
    assert loads_bounded(b'{"value": [1, 2]}', 100) == {"value": [1, 2]}
    cases = [
        (b"[" * 15_000 + b"]" * 15_000, 10**6, "nested 15000 levels deep, over the limit of 64"),
        (b'"' + b"x" * 200 + b'"', 100, "202 bytes, over the 100-byte limit"),
        (b"{not json", 100, "not valid JSON"),
        (b"\xff\xfe", 100, "not valid JSON"),
    ]
    for raw, cap, message in cases:
        with pytest.raises(UnsafeJSON, match=None) as refused:
            loads_bounded(raw, cap)
        assert message in str(refused.value)
    assert loads_bounded("[[1]]", 100, max_depth=2) == [[1]]
    with pytest.raises(UnsafeJSON, match="nested 3 levels deep, over the limit of 2"):
        loads_bounded("[[[1]]]", 100, max_depth=2)

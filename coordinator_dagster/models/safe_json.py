"""Bounded JSON decoding for bytes that come from untrusted parties (model workers, HTTP clients).

`json.loads` recurses once per nesting level, so a 15,000-deep list raises RecursionError (not
ValueError) and can take the caller down; a huge document costs memory in proportion. Here the
size and the nesting depth are checked before parsing, and every way decoding can fail comes out
as one exception, `UnsafeJSON`, whose message says what was wrong.

The depth check scans the text once with two regular expressions (strings removed, then the
brackets counted), so it runs at C speed and needs no recursion. Standard library only: the
worker process imports this module too.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class UnsafeJSON(ValueError):
    """The bytes are not JSON within the limits (size, depth), or not JSON at all."""


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays/objects in `raw` (JSON text), strings ignored."""
    brackets = _BRACKET.findall(_STRING.sub(b"", raw))
    if not brackets:
        return 0
    return max(0, max(accumulate(_STEP[b[0]] for b in brackets)))


def loads_bounded(raw: bytes | str, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads(raw)` if `raw` is at most `max_bytes` long and nested at most `max_depth`
    deep; UnsafeJSON otherwise, and for whatever else goes wrong while decoding."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise UnsafeJSON(f"{len(raw)} bytes, over the {max_bytes}-byte limit")
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise UnsafeJSON(f"nested {depth} levels deep, over the limit of {max_depth}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise UnsafeJSON(f"not valid JSON: {exc}"[:300]) from None

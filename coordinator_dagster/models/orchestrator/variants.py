"""Python values to and from the protocol's typed variants (`commons.Variant`).

The wire encodings are the protocol's: DOUBLE and INT are 8 little-endian bytes, STRING and JSON
UTF-8 text, NONE no bytes. Tables (PARQUET, ARROW) are not used by this node's rounds and are
refused on decode, so a model answering one is FAILED with the reason rather than half-read.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from coordinator_dagster.models.orchestrator.protocol.commons_pb2 import Argument, KwArgument, Variant, VariantType


def encode(value: Any) -> Variant:
    # bool is an int to Python; the protocol has no boolean, so it travels as JSON true/false.
    if value is None:
        return Variant(type=VariantType.NONE, value=b"")
    if isinstance(value, float):
        return Variant(type=VariantType.DOUBLE, value=struct.pack("<d", value))
    if isinstance(value, int) and not isinstance(value, bool):
        return Variant(type=VariantType.INT, value=value.to_bytes(8, "little", signed=True))
    if isinstance(value, str):
        return Variant(type=VariantType.STRING, value=value.encode("utf-8"))
    if isinstance(value, (dict, list, tuple, bool)):
        return Variant(type=VariantType.JSON, value=json.dumps(value, allow_nan=False).encode("utf-8"))
    raise TypeError(f"no variant for {type(value).__name__}")


def decode(variant: Variant) -> Any:
    """The value a variant carries; ValueError when its bytes do not fit its type."""
    kind, raw = variant.type, variant.value
    if kind == VariantType.NONE:
        return None
    if kind == VariantType.DOUBLE:
        if len(raw) != 8:
            raise ValueError(f"DOUBLE variant of {len(raw)} bytes")
        return struct.unpack("<d", raw)[0]
    if kind == VariantType.INT:
        if len(raw) != 8:
            raise ValueError(f"INT variant of {len(raw)} bytes")
        return int.from_bytes(raw, "little", signed=True)
    if kind == VariantType.STRING:
        return raw.decode("utf-8")
    if kind == VariantType.JSON:
        return json.loads(raw.decode("utf-8"))
    raise ValueError(f"variant type {VariantType.Name(kind) if kind in VariantType.values() else kind} is not supported")


def arguments(*values: Any) -> list[Argument]:
    return [Argument(position=i, data=encode(v)) for i, v in enumerate(values)]


def kw_arguments(**values: Any) -> list[KwArgument]:
    return [KwArgument(keyword=k, data=encode(v)) for k, v in values.items()]

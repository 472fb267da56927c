"""A contract written down as data, and rebuilt from it: what an audit bundle carries as
"the contract's settings and scoring version".

Settings (windows, ranking, addresses, scoring version, ...) are stored as JSON. Callables and
types cannot be stored as data: they are recorded by their importable name (`module:qualname`)
with the sha256 of their source code (for a callable with a vectorized twin, of both; for a rule
object such as `TopKPerGroup`, of its class, with its configuration as data). Rebuilding imports
each name from the code at hand and compares the hash, so a verifier learns that a scoring
function changed before it compares any number, and is told which one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import platform
from typing import Any

from pydantic import BaseModel

from coordinator_dagster.scoring.callables import resolve_dotted, vectorized_twin

CALLABLE_FIELDS = ("resolve_ground_truth", "scoring_function", "aggregate_snapshot", "build_emission", "input_builder")
TYPE_FIELDS = ("raw_input_type", "output_type", "score_type")


class RecordError(ValueError):
    """A contract that cannot be written down, or a record that cannot be rebuilt here."""


def dotted_name(obj: Any) -> str | None:
    """`module:qualname` when importing that name gives back `obj` itself; else None (a lambda,
    a closure, an object built at run time)."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    name = f"{module}:{qualname}"
    try:
        return name if resolve_dotted(name) is obj else None
    except ImportError:
        return None


def code_sha256(obj: Any) -> str | None:
    """sha256 of the source code that decides what `obj` computes (None if it has no source)."""
    parts = [obj if inspect.isfunction(obj) or inspect.isclass(obj) else type(obj)]
    twin = vectorized_twin(obj)
    if twin is not None:
        parts.append(twin)
    try:
        text = "\n".join(inspect.getsource(part) for part in parts)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def _callable_record(field: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, BaseModel):  # a configured rule object (TopKPerGroup)
        name = dotted_name(type(value))
        record = {"name": name, "config": value.model_dump(mode="json"), "code_sha256": code_sha256(value)}
    else:
        name = dotted_name(value)
        record = {"name": name, "code_sha256": code_sha256(value)}
    if name is None:
        raise RecordError(f"{field} {value!r} is not importable by name (module:qualname): a bundle could not be re-derived")
    return record


def contract_record(contract: Any) -> dict[str, Any]:
    """The contract as JSON-ready data: settings, types and callables (see the module's docstring)."""
    settings = contract.model_dump(mode="json", exclude=set(CALLABLE_FIELDS) | set(TYPE_FIELDS))
    types = {}
    for field in TYPE_FIELDS:
        name = dotted_name(getattr(contract, field))
        if name is None:
            raise RecordError(f"{field} {getattr(contract, field)!r} is not importable by name (module:qualname)")
        types[field] = name
    callables = {field: _callable_record(field, getattr(contract, field)) for field in CALLABLE_FIELDS}
    return {"contract_class": dotted_name(type(contract)), "settings": settings, "types": types, "callables": callables}


def code_version() -> dict[str, str]:
    """The versions of the code that built a bundle (informative: the callables' hashes decide)."""
    versions = {"python": platform.python_version()}
    for package in ("coordinator-dagster", "polars", "pydantic"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _resolve(field: str, name: str | None) -> Any:
    try:
        return resolve_dotted(name or "")
    except ImportError as exc:
        raise RecordError(f"{field}: {exc}") from None


def rebuild_contract(record: dict[str, Any]) -> Any:
    """The contract the record describes, from the code at hand. Raises `RecordError` naming the
    first callable whose code here is not the code the record was made with."""
    values: dict[str, Any] = dict(record["settings"])
    for field, name in record["types"].items():
        values[field] = _resolve(field, name)
    for field, entry in record["callables"].items():
        if entry is None:
            values[field] = None
            continue
        target = _resolve(field, entry["name"])
        value = target(**entry["config"]) if "config" in entry else target
        here = code_sha256(value)
        if here != entry["code_sha256"]:
            raise RecordError(
                f"{field}: the code of {entry['name']} here (sha256 {here}) is not the code the bundle was made with "
                f"(sha256 {entry['code_sha256']}): the {field.replace('_', ' ')} changed"
            )
        values[field] = value
    contract_class = _resolve("contract_class", record["contract_class"])
    try:
        return contract_class(**values)
    except ValueError as exc:
        raise RecordError(f"the bundle's contract settings are not valid here: {exc}") from None

"""Participant models written for the reference engine, run as our trackers.

The reference's models derive from a base class found by name (`MODEL_BASE_CLASSNAME`, there
`cruncher.ModelBaseClass`), receive data through `feed_update(data)` and answer
`predict(subject, resolve_horizon_seconds, step_seconds)`. Ours receive `tick(payload)` with the
`RawInput` shape. `load_model` wraps a model of the reference's kind in `ReferenceModel`, which
hands it the reference's shape of the same round:

- candle feeds: `{"symbol", "asof_ts", "candles_1m": [{"ts", "open", "high", "low", "close", "volume"}]}`
- tick feeds: `{"symbol", "asof_ts", "ticks": [{"ts", "price"}]}`

with times as Unix seconds and `asof_ts` the newest record's time, as the reference does. A
round whose input was built by the contract's input builder (the payload's `input`) is handed to
`feed_update` as built. Only the standard library is imported here: the sandboxed worker loads
this before any model.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

REFERENCE_BASE_CLASSNAME = "cruncher.ModelBaseClass"
# The round payload's key for an input built by the contract's input builder (models.rounds).
BUILT_INPUT_KEY = "input"
FEED_SHAPES = ("candle", "tick")
_OHLCV = ("open", "high", "low", "close", "volume")


def derives_from(cls: type, base_classname: str) -> bool:
    """Whether `cls` has a base named `base_classname` (`module.Class`; the module may be given
    by its last parts, so `cruncher.ModelBaseClass` matches `starter_challenge.cruncher.ModelBaseClass`)."""
    module, _, name = base_classname.rpartition(".")
    for base in cls.__mro__:
        if base.__name__ != name:
            continue
        if not module or base.__module__ == module or base.__module__.endswith("." + module):
            return True
    return False


def _seconds(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp())


def reference_feed(payload: dict[str, Any], shape: str = "candle") -> dict[str, Any]:
    """The reference's model input for one of our round payloads."""
    records = payload.get("candles", [])
    if shape == "tick":
        items = [{"ts": _seconds(r["ts"]), "price": float(r["close"])} for r in records]
        key = "ticks"
    else:
        # A field the feed did not record stays None rather than being invented.
        items = [{"ts": _seconds(r["ts"]), **{f: r.get(f) for f in _OHLCV}} for r in records]
        key = "candles_1m"
    return {"symbol": payload["subject"], "asof_ts": items[-1]["ts"] if items else 0, key: items}


class ReferenceModel:
    """A reference-style model behind our tracker interface."""

    def __init__(self, model: Any, shape: str = "candle") -> None:
        if shape not in FEED_SHAPES:
            raise ValueError(f"feed shape {shape!r}: expected one of {FEED_SHAPES}")
        self.model = model
        self.shape = shape

    def tick(self, payload: dict[str, Any]) -> None:
        built = payload.get(BUILT_INPUT_KEY)
        self.model.feed_update(built if built is not None else reference_feed(payload, self.shape))

    def predict(self, subject: str, resolve_horizon_seconds: int, step_seconds: int) -> Any:
        return self.model.predict(subject, resolve_horizon_seconds, step_seconds)


# `module:*` names the one class of `module` derived from the base class (the reference finds a
# submission's model that way; its model list names folders, not classes).
ANY_MODEL = "*"


def find_model_class(module_name: str, base_classname: str) -> type:
    import importlib
    import inspect

    module = importlib.import_module(module_name)
    found = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and derives_from(obj, base_classname)
        and obj.__name__ != base_classname.rpartition(".")[2]
    ]
    if len(found) != 1:
        names = sorted(c.__name__ for c in found)
        raise ImportError(f"{module_name}: expected one class derived from {base_classname}, found {names or 'none'}")
    return found[0]


def load_model(entrypoint: str, base_classname: str = REFERENCE_BASE_CLASSNAME, shape: str = "candle") -> Any:
    """The model at `entrypoint` (a class, a factory or an instance), ready for `tick`/`predict`."""
    from coordinator_dagster.scoring.callables import resolve_dotted

    module_name, _, attr = entrypoint.partition(":")
    target = find_model_class(module_name, base_classname) if attr == ANY_MODEL else resolve_dotted(entrypoint)
    model = target() if callable(target) else target
    if derives_from(type(model), base_classname):
        return ReferenceModel(model, shape)
    return model

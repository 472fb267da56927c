"""How contract callables declare a vectorized twin, and how dotted paths resolve to callables.

A contract callable is row-wise (the reference engine's signatures, one prediction or snapshot at a
time). Attaching a frame-level implementation with `@vectorized(frame_fn)` lets the engine run it
over a whole partition at once; callables without one still work, row by row.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def vectorized(frame_fn: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def attach(row_fn: Callable[..., Any]) -> Callable[..., Any]:
        row_fn.__vectorized__ = frame_fn  # type: ignore[attr-defined]
        return row_fn

    return attach


def vectorized_twin(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    return getattr(fn, "__vectorized__", None)


def resolve_dotted(path: str) -> Any:
    """`package.module:attr` or `package.module.attr` → the object; a clear error otherwise."""
    if ":" in path:
        module_name, _, attr_path = path.partition(":")
    else:
        module_name, _, attr_path = path.rpartition(".")
    if not module_name or not attr_path:
        raise ImportError(f"{path!r} is not a 'module:attribute' path")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import module {module_name!r} from {path!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ImportError(f"module {module_name!r} has no attribute {attr_path!r}") from exc
    return target

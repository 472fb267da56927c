"""How contract callables declare a vectorized twin, and how dotted paths resolve to callables.

A contract callable is row-wise (the reference engine's signatures, one prediction or snapshot at a
time). Attaching a frame-level implementation with `@vectorized(frame_fn)` lets the engine run it
over a whole partition at once; callables without one still work, row by row.
"""

from __future__ import annotations

import pkgutil
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
    """`package.module:attr` or `package.module.attr` → the object (`pkgutil.resolve_name`), with
    an ImportError that says which part is wrong."""
    module_name, colon, attr_path = path.partition(":")
    if not module_name or (colon and not attr_path) or (not colon and "." not in path):
        raise ImportError(f"{path!r} is not a 'module:attribute' path")
    try:
        return pkgutil.resolve_name(path)
    except ValueError as exc:
        raise ImportError(f"{path!r} is not a 'module:attribute' path") from exc
    except AttributeError as exc:
        raise ImportError(f"{path!r}: {exc}") from exc
    except ImportError as exc:
        raise ImportError(f"cannot import module {exc.name or module_name!r} from {path!r}: {exc}") from exc

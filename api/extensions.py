"""Custom routers: `*.py` files in the custom folder and `API_ROUTES=module:attr` specs.

Each must provide a FastAPI `APIRouter`; it is mounted behind the admin key unless its module
sets `AUTH_TIER = "read"` or `"public"`. A bad file or spec is a start-up error that names it,
never a silently missing route.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from fastapi import APIRouter

from coordinator_dagster.scoring.callables import resolve_dotted

# The tiers a router may declare; `api.middleware.Authenticate` enforces them.
TIERS = ("admin", "read", "public")


class CustomRouteError(RuntimeError):
    """A custom router that cannot be loaded."""


def _tier(module: object, origin: str) -> str:
    tier = getattr(module, "AUTH_TIER", "admin")
    if tier not in TIERS:
        raise CustomRouteError(f"{origin}: AUTH_TIER must be one of {sorted(TIERS)}, got {tier!r}")
    return tier


def load_custom_routers(custom_dir: Path | None, specs: tuple[str, ...]) -> list[tuple[str, APIRouter, str]]:
    """(origin, router, tier) for every custom router, files in name order, then the specs."""
    found: list[tuple[str, APIRouter, str]] = []
    files = sorted(custom_dir.glob("*.py")) if custom_dir is not None and custom_dir.is_dir() else []
    for path in files:
        if path.name.startswith("_"):
            continue
        name = f"api_custom_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise CustomRouteError(f"{path}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise CustomRouteError(f"{path}: {type(exc).__name__}: {exc}") from exc
        router = getattr(module, "router", None)
        if not isinstance(router, APIRouter):
            raise CustomRouteError(f"{path}: defines no APIRouter named `router`")
        found.append((str(path), router, _tier(module, str(path))))
    for spec_text in specs:
        # The module part names where AUTH_TIER is read, so the colon form is required here.
        module_name, _, attr = spec_text.partition(":")
        if not module_name or not attr:
            raise CustomRouteError(f"API_ROUTES entry {spec_text!r}: expected module:attribute")
        try:
            router = resolve_dotted(spec_text)
        except Exception as exc:
            raise CustomRouteError(f"API_ROUTES entry {spec_text!r}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(router, APIRouter):
            raise CustomRouteError(f"API_ROUTES entry {spec_text!r}: not an APIRouter")
        found.append((spec_text, router, _tier(sys.modules[module_name], spec_text)))
    return found

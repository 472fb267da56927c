"""Assembly of the report API: `create_app()` wires settings, the lake, middleware and routers.

Nothing here reads the environment at import; `coordinator api` calls `create_app()` with no
arguments (settings from the environment) and tests pass their own `ApiSettings`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from api.auth import require_read
from api.cache import ResponseCache
from api.docs import add_offline_docs
from api.extensions import TIERS, load_custom_routers
from api.middleware import BodyLimit
from api.routes import ROUTES
from api.settings import ApiSettings
from coordinator_dagster.contracts import load_contract
from coordinator_dagster.lake.store import Lake


def _version() -> str:
    try:
        return version("coordinator-dagster")
    except PackageNotFoundError:
        return "0.0.0"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class FiniteJSONResponse(JSONResponse):
    """JSON has no NaN or infinity: a non-finite float (a metric over one value, say) is null,
    where Starlette's default would fail the whole answer with a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except ValueError:
            return json.dumps(_finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def create_app(settings: ApiSettings | None = None, *, cache_clock: Callable[[], float] = time.monotonic) -> FastAPI:
    settings = settings if settings is not None else ApiSettings.from_env()
    app = FastAPI(
        title="coordinator-dagster report API",
        version=_version(),
        description="Reports of a Crunch coordinator node, served from its Parquet lake, and the checkpoint lifecycle.",
        default_response_class=FiniteJSONResponse,
        # FastAPI's own pages load their scripts from a CDN; these are served from the package.
        docs_url=None,
        redoc_url=None,
    )
    add_offline_docs(app)
    app.state.settings = settings
    # The contract fixes the scoring version the views show and the leaderboard's windows.
    app.state.contract = load_contract()
    app.state.lake = Lake.for_contract(settings.home, app.state.contract)
    app.state.reader = app.state.lake.reader()
    # Innermost first: the cache sits inside CORS (its headers depend on the request) and the
    # body limit outside everything.
    app.add_middleware(
        ResponseCache,
        lake=app.state.lake,
        read_key_required=settings.api_key is not None and settings.read_auth,
        clock=cache_clock,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH"],
            allow_headers=["*"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    read_paths: set[str] = set()
    for router, tier in ROUTES:
        app.include_router(router, dependencies=[Depends(require_read)] if tier == "read" else [])
        if tier == "read":
            read_paths |= {route.path for route in router.routes}
    custom = load_custom_routers(settings.custom_dir, settings.routes)
    app.state.custom_routes = [origin for origin, _, _ in custom]
    for _, router, tier in custom:
        app.include_router(router, dependencies=TIERS[tier])
        if tier == "read":
            read_paths |= {route.path for route in router.routes}
    _document_auth(app, settings, read_paths)
    return app


def _document_auth(app: FastAPI, settings: ApiSettings, read_paths: set[str]) -> None:
    """The OpenAPI schema states the auth this node enforces: a route only lists the key schemes
    (and its 401) when the key is actually needed, so clients and schema-driven tests see the truth."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if not isinstance(operation, dict) or "security" not in operation:
                    continue
                if settings.api_key is None or (path in read_paths and not settings.read_auth):
                    del operation["security"]
                else:
                    operation.setdefault("responses", {})["401"] = {"description": "the API key is missing or not valid"}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

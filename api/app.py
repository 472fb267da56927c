"""Assembly of the report API: `create_app()` wires settings, the lake, middleware and routers.

Nothing here reads the environment at import; `coordinator api` calls `create_app()` with no
arguments (settings from the environment) and tests pass their own `ApiSettings`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api.auth import WRITE_METHODS, Tiers, needs_key
from api.cache import ResponseCache
from api.docs import add_offline_docs
from api.extensions import load_custom_routers
from api.fast_lane import FastLane
from api.middleware import Authenticate, BodyLimit, redact_access_log
from api.prebuilt import Prebuilt, render
from api.routes import ROUTES, audit_bundle
from api.settings import ApiSettings
from coordinator_dagster.contracts import load_contract
from coordinator_dagster.lake.store import Lake


def _version() -> str:
    try:
        return version("coordinator-dagster")
    except PackageNotFoundError:
        return "0.0.0"


class FiniteJSONResponse(JSONResponse):
    """JSON has no NaN or infinity: a non-finite float is null (`api.prebuilt.render`), where
    Starlette's default would fail the whole answer with a 500."""

    def render(self, content: Any) -> bytes:
        return render(content)


async def _validation_error(request: Request, exc: RequestValidationError) -> FiniteJSONResponse:
    """FastAPI's 422, rendered so that a non-finite input echoed back (`{"status": 1e999}` parses
    to infinity) is null instead of a body that cannot be encoded (a 500)."""
    return FiniteJSONResponse(status_code=422, content={"detail": jsonable_encoder(exc.errors())})


def _route_table(routers: list[tuple[Any, str, bool]]) -> tuple:
    """(path regex, methods, tier) of every route: the router's tier, and admin for the node's
    own writes (custom routers keep the tier they declare for every method)."""
    table = []
    for router, tier, custom in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                methods = frozenset(route.methods or ())
                table.append((route.path_regex, methods, tier if custom or not methods & WRITE_METHODS else "admin"))
    return tuple(table)


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
    app.add_exception_handler(RequestValidationError, _validation_error)
    redact_access_log()
    app.state.settings = settings
    # The contract fixes the scoring version the views show and the leaderboard's windows.
    app.state.contract = load_contract()
    app.state.lake = Lake.for_contract(settings.home, app.state.contract)
    app.state.reader = app.state.lake.reader()
    app.state.prebuilt = Prebuilt(app.state.reader, app.state.contract)
    mounted: list[tuple[Any, str, bool]] = []
    for router, tier in ROUTES:
        app.include_router(router)
        mounted.append((router, tier, False))
    # The audit bundle's tier is the operator's choice (AUDIT_BUNDLE_ACCESS).
    app.include_router(audit_bundle.router)
    mounted.append((audit_bundle.router, settings.audit_bundle_access, False))
    custom = load_custom_routers(settings.custom_dir, settings.routes)
    app.state.custom_routes = [origin for origin, _, _ in custom]
    for _, router, tier in custom:
        app.include_router(router)
        mounted.append((router, tier, True))
    tiers = Tiers(settings.public_prefixes, settings.admin_prefixes, _route_table(mounted))
    app.state.tiers = tiers
    # Innermost first: the cache sits inside the key check (a cached answer is still guarded) and
    # CORS (its headers depend on the request); the body limit outside everything.
    routes = [route for router, _, _ in mounted for route in router.routes if isinstance(route, APIRoute)]
    # One listing of the lake's files for the cache and the reader, unless a test drives the
    # cache's clock by hand.
    identities = app.state.reader.identities if cache_clock is time.monotonic else None
    # Innermost: prebuilt default answers without FastAPI's per-request work (api.fast_lane).
    app.add_middleware(FastLane, routes=routes)
    app.add_middleware(ResponseCache, lake=app.state.lake, routes=routes, clock=cache_clock, identities=identities)
    app.add_middleware(Authenticate, settings=settings, tiers=tiers)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH"],
            allow_headers=["*"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _document_auth(app, settings, tiers)
    return app


# The three ways to send the key (api.auth), as FastAPI names their schemes.
KEY_SCHEMES = {
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the node's API_KEY"},
    "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "the node's API_KEY as a bearer token"},
    "APIKeyQuery": {"type": "apiKey", "in": "query", "name": "api_key", "description": "the node's API_KEY"},
}


def _document_auth(app: FastAPI, settings: ApiSettings, tiers: Tiers) -> None:
    """The OpenAPI schema states the auth this node enforces: a route only lists the key schemes
    (and its 401) when the key is actually needed, so clients and schema-driven tests see the truth."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        guarded = False
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if not isinstance(operation, dict):
                    continue
                if "requestBody" in operation:
                    # FastAPI's own answer to bytes that are not JSON text at all (not UTF-8).
                    operation.setdefault("responses", {}).setdefault("400", {"description": "the body cannot be parsed"})
                if needs_key(settings, tiers.of(method.upper(), path)):
                    guarded = True
                    operation["security"] = [{name: []} for name in KEY_SCHEMES]
                    operation.setdefault("responses", {})["401"] = {"description": "the API key is missing or not valid"}
                else:
                    operation.pop("security", None)
        if guarded:
            schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(KEY_SCHEMES)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

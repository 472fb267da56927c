"""Assembly of the report API: `create_app()` wires settings, the lake, middleware and routers.

Nothing here reads the environment at import; `coordinator api` calls `create_app()` with no
arguments (settings from the environment) and tests pass their own `ApiSettings`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.routes import ROUTERS
from api.settings import ApiSettings
from coordinator_dagster.contracts import load_contract
from coordinator_dagster.lake import Lake


def _version() -> str:
    try:
        return version("coordinator-dagster")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings if settings is not None else ApiSettings.from_env()
    app = FastAPI(
        title="coordinator-dagster report API",
        version=_version(),
        description="Read-only reports of a Crunch coordinator node, served from its Parquet lake.",
    )
    app.state.settings = settings
    # The contract fixes the scoring version the views show and the leaderboard's windows.
    app.state.lake = Lake.for_contract(settings.home, load_contract())
    app.state.reader = app.state.lake.reader()
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET"], allow_headers=["*"]
        )
    for router in ROUTERS:
        app.include_router(router)
    return app

"""The report API's settings: one pydantic object, read from the environment by `from_env()`
when the app is created, never at import.

The lake's location is the node's own (`COORDINATOR_HOME` through
`coordinator_dagster.settings.load_settings()`), so the API always reads the lake that the
Dagster runs write; only settings that concern the API itself are added here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from coordinator_dagster.settings import load_settings

CORS_ORIGINS_ENV = "API_CORS_ORIGINS"
API_KEY_ENV = "API_KEY"
READ_AUTH_ENV = "API_READ_AUTH"
ROUTES_ENV = "API_ROUTES"
CUSTOM_DIR_ENV = "API_CUSTOM_DIR"
DAGSTER_GRAPHQL_ENV = "DAGSTER_GRAPHQL_URL"
# The custom routers shipped with the node live next to this module.
DEFAULT_CUSTOM_DIR = Path(__file__).resolve().parent / "custom"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class ApiSettings(BaseModel):
    # pydantic-settings is not a dependency of the project; `from_env()` plays its role, as
    # `coordinator_dagster.settings.load_settings()` does for the node.
    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path
    cors_origins: tuple[str, ...] = ()
    # None: every route is open (a node on a private network). Set: admin routes need it.
    api_key: SecretStr | None = None
    # With a key set, also guard the read routes that expose raw data (predictions, snapshots, data).
    read_auth: bool = False
    # `module:attr` specs of extra routers (API_ROUTES, comma separated) and the folder of
    # `*.py` files with a `router` (API_CUSTOM_DIR); both are admin-tier unless they say otherwise.
    routes: tuple[str, ...] = ()
    custom_dir: Path | None = DEFAULT_CUSTOM_DIR
    max_body_bytes: int = Field(default=16 * 1024, gt=0)
    # The Dagster webserver that runs feed backfills (`dagster dev` serves it on port 3000).
    dagster_graphql_url: str = "http://127.0.0.1:3000/graphql"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        environ = os.environ if environ is None else environ
        origins = tuple(origin.strip() for origin in environ.get(CORS_ORIGINS_ENV, "").split(",") if origin.strip())
        key = environ.get(API_KEY_ENV, "").strip()
        read_auth = environ.get(READ_AUTH_ENV, "").strip().lower()
        if read_auth not in _TRUE | _FALSE:
            raise ValueError(f"{READ_AUTH_ENV}={read_auth!r}: expected true or false")
        routes = tuple(spec.strip() for spec in environ.get(ROUTES_ENV, "").split(",") if spec.strip())
        custom_dir = environ.get(CUSTOM_DIR_ENV)
        graphql = environ.get(DAGSTER_GRAPHQL_ENV, "").strip()
        return cls(
            home=load_settings(environ).home,
            cors_origins=origins,
            api_key=SecretStr(key) if key else None,
            read_auth=read_auth in _TRUE,
            routes=routes,
            custom_dir=Path(custom_dir) if custom_dir else DEFAULT_CUSTOM_DIR,
            **({"dagster_graphql_url": graphql} if graphql else {}),
        )

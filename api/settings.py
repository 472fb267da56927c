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

from pydantic import BaseModel, ConfigDict

from coordinator_dagster.settings import load_settings

CORS_ORIGINS_ENV = "API_CORS_ORIGINS"


class ApiSettings(BaseModel):
    # pydantic-settings is not a dependency of the project; `from_env()` plays its role, as
    # `coordinator_dagster.settings.load_settings()` does for the node.
    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        environ = os.environ if environ is None else environ
        origins = tuple(origin.strip() for origin in environ.get(CORS_ORIGINS_ENV, "").split(",") if origin.strip())
        return cls(home=load_settings(environ).home, cors_origins=origins)

"""The report API's settings: a pydantic-settings class beside the node's, read from the
environment by `from_env()` when the app is created, never at import.

The lake's location is the node's own (`COORDINATOR_HOME`, the same `Home` field as
`coordinator_dagster.settings.Settings`), so the API always reads the lake that the Dagster runs
write; only settings that concern the API itself are added here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from coordinator_dagster.settings import CheckpointApproval, Home, NodeEnvironment, read_settings

# The custom routers shipped with the node live next to this module.
DEFAULT_CUSTOM_DIR = Path(__file__).resolve().parent / "custom"


class ApiSettings(NodeEnvironment, frozen=True, extra="forbid"):
    home: Home
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(default=(), validation_alias="API_CORS_ORIGINS")
    # None: every route is open (a node on a private network). Set: admin routes need it.
    api_key: SecretStr | None = None
    # With a key set, also guard the read routes that expose raw data (predictions, snapshots, data).
    read_auth: bool = Field(default=False, validation_alias="API_READ_AUTH")
    # Path prefixes (comma separated, the reference's variables) that move read routes to the
    # public or the admin tier; the longest match wins (api.auth). Empty: each route's own tier.
    public_prefixes: Annotated[tuple[str, ...], NoDecode] = Field(default=(), validation_alias="API_PUBLIC_PREFIXES")
    admin_prefixes: Annotated[tuple[str, ...], NoDecode] = Field(default=(), validation_alias="API_ADMIN_PREFIXES")
    # `module:attr` specs of extra routers (API_ROUTES, comma separated) and the folder of
    # `*.py` files with a `router` (API_CUSTOM_DIR); both are admin-tier unless they say otherwise.
    routes: Annotated[tuple[str, ...], NoDecode] = Field(default=(), validation_alias="API_ROUTES")
    custom_dir: Path | None = Field(default=DEFAULT_CUSTOM_DIR, validation_alias="API_CUSTOM_DIR")
    max_body_bytes: int = Field(default=16 * 1024, gt=0, validation_alias="API_MAX_BODY_BYTES")
    # The Dagster webserver that runs feed backfills (`dagster dev` serves it on port 3000).
    dagster_graphql_url: str = "http://127.0.0.1:3000/graphql"
    # The node's checkpoint period when set (the node validates it at start-up); `/info` shows it.
    checkpoint_interval_seconds: int | None = Field(default=None, ge=60)
    # The node's own CHECKPOINT_APPROVAL: whether `confirm` requires an approved emission hash.
    checkpoint_approval: CheckpointApproval
    # Who may download a checkpoint's audit bundle (GET /reports/checkpoints/{id}/bundle).
    audit_bundle_access: Literal["public", "admin"] = Field(default="public", validation_alias="AUDIT_BUNDLE_ACCESS")

    @field_validator("cors_origins", "routes", "public_prefixes", "admin_prefixes", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("public_prefixes", "admin_prefixes")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            if not prefix.startswith("/"):
                raise ValueError(f"a path prefix starts with '/': {prefix!r}")
        return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        return read_settings(cls, environ)

"""Node settings from the environment, read when definitions are built (never at import).

Only plain configuration lives here; secrets reach resources through `dg.EnvVar` at launch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from coordinator_dagster.granularity import granularity_seconds


def default_home() -> Path:
    """`.coordinator/` in the checkout (git-ignored), or in the working directory if installed."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists():
        return checkout / ".coordinator"
    return Path.cwd() / ".coordinator"


class Settings(BaseModel):
    home: Path = Field(default_factory=default_home)
    feed_source: str = "synthetic"
    feed_subjects: list[str] = Field(default_factory=lambda: ["BTC", "ETH"])
    feed_kind: str = "candle"
    feed_granularity: str = "1m"
    synthetic_seed: int = 7
    model_timeout_seconds: float = Field(default=5.0, gt=0)
    models_manifest: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    @field_validator("feed_granularity")
    @classmethod
    def _granularity(cls, value: str) -> str:
        granularity_seconds(value)
        return value

    @field_validator("feed_kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in ("candle", "tick"):
            raise ValueError(f"FEED_KIND must be 'candle' or 'tick', got {value!r}")
        return value


_ENV = {
    "home": "COORDINATOR_HOME",
    "feed_source": "FEED_SOURCE",
    "feed_subjects": "FEED_SUBJECTS",
    "feed_kind": "FEED_KIND",
    "feed_granularity": "FEED_GRANULARITY",
    "synthetic_seed": "SYNTHETIC_SEED",
    "model_timeout_seconds": "MODEL_TIMEOUT_SECONDS",
    "models_manifest": "MODELS_MANIFEST",
    "api_host": "API_HOST",
    "api_port": "API_PORT",
}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field, var in _ENV.items():
        raw = environ.get(var, "").strip()
        if not raw:
            continue
        values[field] = [s.strip().upper() for s in raw.split(",") if s.strip()] if field == "feed_subjects" else raw
    return Settings.model_validate(values)

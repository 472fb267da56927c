"""Node settings from the environment, read when definitions are built (never at import).

Only plain configuration lives here; secrets reach resources through `dg.EnvVar` at launch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from coordinator_dagster.feeds.granularity import granularity_seconds


def default_home() -> Path:
    """`.coordinator/` in the checkout (git-ignored), or in the working directory if installed."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists():
        return checkout / ".coordinator"
    return Path.cwd() / ".coordinator"


FEED_SOURCES = ("synthetic", "ccxt", "pyth")


class Settings(BaseModel):
    home: Path = Field(default_factory=default_home)
    feed_source: str = "synthetic"
    feed_subjects: list[str] = Field(default_factory=lambda: ["BTC", "ETH"])
    feed_kind: str = "candle"
    feed_granularity: str = "1m"
    synthetic_seed: int = 7
    # ccxt (FEED_SOURCE=ccxt)
    feed_exchange: str = "binance"
    feed_quote: str = "USDT"
    feed_symbols: dict[str, str] = Field(default_factory=dict)  # FEED_SYMBOLS="BTC=BTC/USDC,ETH=ETH/USDC"
    feed_base_url: str = ""  # FEED_BASE_URL: a mirror, proxy or loopback server for the ccxt exchange
    feed_ws_url: str = ""  # FEED_WS_URL: replaces scheme and host of the exchange's WebSocket URLs (live listener)
    # Pyth Hermes (FEED_SOURCE=pyth); the API key is a secret: PYTH_API_KEY, passed as dg.EnvVar
    pyth_hermes_url: str = "https://hermes.pyth.network"
    pyth_feed_ids: dict[str, str] = Field(default_factory=dict)  # PYTH_FEED_IDS="SOL=<64 hex>"
    pyth_api_key_set: bool = False
    # Every real source
    feed_timeout_seconds: float = Field(default=10.0, gt=0)
    feed_max_retries: int = Field(default=4, ge=0)
    feed_backoff_seconds: float = Field(default=1.0, ge=0)
    # Feed checks
    feed_max_gap_steps: int = Field(default=1, ge=1)
    feed_frozen_records: int = Field(default=30, ge=2)
    feed_freshness_seconds: int = Field(default=180, gt=0)
    # Live streaming (`coordinator feeds listen`): with FEED_LIVE=1 the listener writes feed_records
    # and the minute ingest schedule starts stopped.
    feed_live: bool = False
    model_timeout_seconds: float = Field(default=5.0, gt=0)
    models_manifest: str = ""
    # The model runner service (`coordinator models serve`); empty URL: models run in-process.
    model_runner_url: str = ""
    model_runner_host: str = "127.0.0.1"
    model_runner_port: int = Field(default=8100, ge=0, le=65535)
    model_memory_limit_mb: int = Field(default=1024, ge=0)  # per worker (RLIMIT_AS); 0 = no limit
    model_unhealthy_after: int = Field(default=3, ge=1)  # consecutive timeouts/crashes
    model_retry_seconds: float = Field(default=60.0, gt=0)  # first backoff of an unhealthy model
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    @field_validator("feed_granularity")
    @classmethod
    def _granularity(cls, value: str) -> str:
        granularity_seconds(value)
        return value

    @field_validator("feed_source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value not in FEED_SOURCES:
            raise ValueError(f"FEED_SOURCE must be one of {', '.join(FEED_SOURCES)}, got {value!r}")
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
    "feed_exchange": "FEED_EXCHANGE",
    "feed_quote": "FEED_QUOTE",
    "feed_symbols": "FEED_SYMBOLS",
    "feed_base_url": "FEED_BASE_URL",
    "feed_ws_url": "FEED_WS_URL",
    "pyth_hermes_url": "PYTH_HERMES_URL",
    "pyth_feed_ids": "PYTH_FEED_IDS",
    "feed_timeout_seconds": "FEED_TIMEOUT_SECONDS",
    "feed_max_retries": "FEED_MAX_RETRIES",
    "feed_backoff_seconds": "FEED_BACKOFF_SECONDS",
    "feed_max_gap_steps": "FEED_MAX_GAP_STEPS",
    "feed_frozen_records": "FEED_FROZEN_RECORDS",
    "feed_freshness_seconds": "FEED_FRESHNESS_SECONDS",
    "feed_live": "FEED_LIVE",
    "model_timeout_seconds": "MODEL_TIMEOUT_SECONDS",
    "models_manifest": "MODELS_MANIFEST",
    "model_runner_url": "MODEL_RUNNER_URL",
    "model_runner_host": "MODEL_RUNNER_HOST",
    "model_runner_port": "MODEL_RUNNER_PORT",
    "model_memory_limit_mb": "MODEL_MEMORY_LIMIT_MB",
    "model_unhealthy_after": "MODEL_UNHEALTHY_AFTER",
    "model_retry_seconds": "MODEL_RETRY_SECONDS",
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
        if field == "feed_subjects":
            values[field] = [s.strip().upper() for s in raw.split(",") if s.strip()]
        elif field in ("feed_symbols", "pyth_feed_ids"):
            values[field] = _pairs(var, raw)
        else:
            values[field] = raw
    # Only whether the secret is there: its value reaches the resource as dg.EnvVar at launch.
    values["pyth_api_key_set"] = bool(environ.get("PYTH_API_KEY", "").strip())
    return Settings.model_validate(values)


def _pairs(var: str, raw: str) -> dict[str, str]:
    """`"BTC=BTC/USDC, ETH=ETH/USDC"` → {"BTC": "BTC/USDC", "ETH": "ETH/USDC"}."""
    pairs = {}
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        subject, sep, value = item.partition("=")
        if not sep or not subject.strip() or not value.strip():
            raise ValueError(f"{var}: {item!r} is not SUBJECT=VALUE")
        pairs[subject.strip().upper()] = value.strip()
    return pairs

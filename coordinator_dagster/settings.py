"""The node's settings: one pydantic-settings class read from the environment when it is created
(never at import), the home folders resolved from it, and the error text that names variables.

Only plain configuration lives here; secrets reach resources through `dg.EnvVar` at launch. The
report API's own settings (`api/settings.py`) derive from `NodeEnvironment` below.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from coordinator_dagster.feeds.granularity import granularity_seconds
from coordinator_dagster.instance_storage import postgres_url_problem, storage_mismatch
from coordinator_dagster.models.reference_models import REFERENCE_BASE_CLASSNAME
from coordinator_dagster.reference_settings import refused_variables


def default_home() -> Path:
    """`.coordinator/` in the checkout (git-ignored), or in the working directory if installed."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists():
        return checkout / ".coordinator"
    return Path.cwd() / ".coordinator"


# COORDINATOR_HOME, shared by every settings class of the node (the API reads the lake the runs write).
Home = Annotated[Path, Field(default_factory=default_home, validation_alias="COORDINATOR_HOME")]
# CHECKPOINT_APPROVAL: `required`: `confirm` accepts only a checkpoint whose current emission hash
# was approved (coordinator_dagster.checkpoint_review); `off`: the reference's confirm, no approval.
# Off by default so the reference's clients keep working; `make run` and new workspaces require it.
CheckpointApproval = Annotated[Literal["required", "off"], Field(default="off", validation_alias="CHECKPOINT_APPROVAL")]


class NodeEnvironment(BaseSettings):
    """Base of the node's settings classes: each field is read from the variable of its name in
    upper case (or its `validation_alias`); empty variables count as unset; keyword arguments
    (tests, the demo) use field names."""

    model_config = SettingsConfigDict(env_ignore_empty=True, validate_by_name=True, validate_by_alias=True, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments, then the environment `read_settings` was given (default os.environ);
        # no .env file and no secrets folder: a node is configured by its environment only.
        return init_settings, _Environment(settings_cls, _ENVIRON.get())


FEED_SOURCES = ("synthetic", "ccxt", "pyth")
# The reference engine's FEED_SOURCE values that name an exchange: ccxt with that exchange.
EXCHANGE_SOURCES = ("binance",)


class Settings(NodeEnvironment):
    home: Home
    # DAGSTER_HOME; unset: no instance for the CLI's own runs, `make run` uses HOME/dagster_home.
    dagster_home: Path | None = None
    # DAGSTER_PG_URL: the instance's runs, event logs, schedules and cursors in PostgreSQL (the
    # dagster.yaml block make run writes reads it). A secret (it may hold a password): only whether
    # it is set is kept, once its form is checked (coordinator_dagster/instance_storage.py).
    dagster_pg_url_set: Annotated[bool, NoDecode] = Field(default=False, validation_alias="DAGSTER_PG_URL")
    # LAKE_URL: the lake in an S3-compatible bucket (`s3://bucket/prefix`), HOME/lake being this
    # host's copy of it (coordinator_dagster/lake/object_storage.py); unset: the lake is HOME/lake.
    # Credentials: the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (secrets, not kept here).
    lake_url: str | None = None
    lake_s3_endpoint_url: str | None = None
    lake_s3_region: str | None = None
    lake_sync_seconds: float = Field(default=1.0, ge=0)
    feed_source: str = "synthetic"
    feed_subjects: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTC", "ETH"])
    feed_kind: str = "candle"
    feed_granularity: str = "1m"
    synthetic_seed: int = 7
    # ccxt (FEED_SOURCE=ccxt)
    feed_exchange: str = "binance"
    feed_quote: str = "USDT"
    feed_symbols: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)  # FEED_SYMBOLS="BTC=BTC/USDC,ETH=ETH/USDC"
    feed_base_url: str = ""  # FEED_BASE_URL: a mirror, proxy or loopback server for the ccxt exchange
    feed_ws_url: str = ""  # FEED_WS_URL: replaces scheme and host of the exchange's WebSocket URLs (live listener)
    # Pyth Hermes (FEED_SOURCE=pyth); the API key is a secret: PYTH_API_KEY, passed as dg.EnvVar
    pyth_hermes_url: str = "https://hermes.pyth.network"
    pyth_benchmarks_url: str = "https://benchmarks.pyth.network"  # history, in ranges
    pyth_feed_ids: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)  # PYTH_FEED_IDS="SOL=<64 hex>"
    # Only whether PYTH_API_KEY is there: its value reaches the resource as dg.EnvVar at launch.
    pyth_concurrency: int = Field(default=4, ge=1)  # Hermes history requests in flight at once
    pyth_api_key_set: Annotated[bool, NoDecode] = Field(default=False, validation_alias="PYTH_API_KEY")
    # Every real source
    feed_timeout_seconds: float = Field(default=10.0, gt=0)
    feed_max_retries: int = Field(default=4, ge=0)
    feed_backoff_seconds: float = Field(default=1.0, ge=0)
    # Feed checks
    # Unset: scaled to the granularity (feeds.checks.FeedCheckConfig.for_step).
    feed_max_gap_steps: int | None = Field(default=None, ge=1)
    feed_frozen_records: int | None = Field(default=None, ge=2)
    feed_freshness_seconds: int = Field(default=180, gt=0)
    # Live streaming (`coordinator feeds listen`): with FEED_LIVE=1 the listener writes feed_records
    # and the minute ingest schedule starts stopped.
    feed_live: bool = False
    # The round engine (in `coordinator feeds listen`) also scores due rounds in micro-batches;
    # the score sensor then leaves them to it.
    round_engine_scoring: bool = False
    # Overrides the contract's checkpoint_period with any period (see partitions.checkpoint_partitions).
    checkpoint_interval_seconds: int | None = Field(default=None, ge=60)
    checkpoint_approval: CheckpointApproval
    feed_record_ttl_days: int = Field(default=90, ge=1)  # feed_retention deletes older feed hours
    model_timeout_seconds: float = Field(default=5.0, gt=0)
    models_manifest: str = ""
    # The model runner service (`coordinator models serve`); empty URL: models run in-process.
    model_runner_url: str = ""
    model_runner_host: str = "127.0.0.1"
    model_runner_port: int = Field(default=8100, ge=0, le=65535)
    model_memory_limit_mb: int = Field(default=1024, ge=0)  # per worker (RLIMIT_AS); 0 = no limit
    model_unhealthy_after: int = Field(default=3, ge=1)  # consecutive timeouts/crashes
    model_retry_seconds: float = Field(default=60.0, gt=0)  # first backoff of an unhealthy model
    # Several runners, comma-separated, each serving a share of the models (MODEL_RUNNER_URL wins).
    model_runner_urls: str = ""
    # The runner service's caps and its workers' sandbox and limits (docs/models.md).
    model_runner_max_sessions: int = Field(default=4, ge=0)
    model_runner_max_workers: int = Field(default=512, ge=0)
    # MODEL_RUNNER=orchestrator: models hosted by CrunchDAO's model orchestrator (docs/orchestrator.md),
    # announced at ws://MODEL_RUNNER_NODE_HOST:MODEL_RUNNER_NODE_PORT/CRUNCH_ID; SECURE_CERT_DIR
    # (ca.crt, tls.crt, tls.key) for its secure mode; ORCHESTRATOR_CRUNCHERS maps wallets to indexes.
    model_runner: Literal["default", "orchestrator"] = "default"
    model_runner_node_host: str = "localhost"
    model_runner_node_port: int = Field(default=9091, ge=1, le=65535)
    crunch_id: str = ""
    secure_cert_dir: str = ""
    orchestrator_crunchers: str = ""
    model_sandbox: Literal["auto", "required", "off"] = "auto"
    model_scratch_mb: int = Field(default=64, ge=1)
    model_cpu_seconds: int = Field(default=3600, ge=0)  # RLIMIT_CPU over a worker's life; 0 = none
    model_max_processes: int = Field(default=64, ge=0)  # RLIMIT_NPROC of a sandboxed worker; 0 = none
    # Models derived from this class (`module.Class`, the reference engine's name) get its
    # feed_update/predict protocol (coordinator_dagster/models/reference_models.py).
    model_base_classname: str = Field(default=REFERENCE_BASE_CLASSNAME, pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Where the hourly (and checkpoint) partitions start: PARTITIONS_START, else the start
    # remembered in HOME/partitions_start (`make run` writes it when a home first runs), else
    # None: the embedded example's 2026-01-01 (coordinator_dagster.partitions.DEFAULT_START).
    partitions_start: dt.datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _exchange_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and str(data.get("feed_source", "")).strip().lower() in EXCHANGE_SOURCES:
            data = {**data, "feed_exchange": data["feed_source"].strip().lower(), "feed_source": "ccxt"}
        return data

    @model_validator(mode="after")
    def _pair_subjects(self) -> Settings:
        # A subject named as the exchange names the pair (the reference's BTCUSDT) is that pair.
        if self.feed_source == "ccxt":
            quote = self.feed_quote.upper()
            for subject in self.feed_subjects:
                if subject not in self.feed_symbols and subject.endswith(quote) and len(subject) > len(quote):
                    self.feed_symbols[subject] = f"{subject[: -len(quote)]}/{quote}"
        return self

    @model_validator(mode="after")
    def _orchestrator(self) -> Settings:
        if self.model_runner == "orchestrator" and not self.crunch_id.strip():
            raise ValueError("MODEL_RUNNER=orchestrator needs CRUNCH_ID (the crunch whose models the orchestrator announces)")
        return self

    @field_validator("feed_subjects", mode="before")
    @classmethod
    def _subjects(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [s.strip().upper() for s in value.split(",") if s.strip()]
        return value

    @field_validator("feed_symbols", "pyth_feed_ids", mode="before")
    @classmethod
    def _pairs(cls, value: Any, info: Any) -> Any:
        return _pairs(info.field_name.upper(), value) if isinstance(value, str) else value

    @field_validator("pyth_api_key_set", mode="before")
    @classmethod
    def _key_present(cls, value: Any) -> Any:
        return bool(value.strip()) if isinstance(value, str) else value

    @field_validator("lake_url")
    @classmethod
    def _lake_url(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("s3://") and len(value) > len("s3://")):
            raise ValueError("LAKE_URL must look like s3://BUCKET/PREFIX (or be unset for the lake on local disk)")
        return value

    @field_validator("dagster_pg_url_set", mode="before")
    @classmethod
    def _pg_url(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if problem := postgres_url_problem(value.strip()):
            raise ValueError(problem)
        return True

    @field_validator("checkpoint_interval_seconds")
    @classmethod
    def _a_period_the_partitions_can_hold(cls, value: int | None) -> int | None:
        if value is not None:
            from coordinator_dagster.partitions import DEFAULT_START, checkpoint_partitions  # Dagster, only when set

            checkpoint_partitions(value, DEFAULT_START)
        return value

    @field_validator("partitions_start")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return value.replace(tzinfo=dt.timezone.utc) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _remembered_start(self) -> Settings:
        if self.partitions_start is None and self.partitions_start_file().is_file():
            text = self.partitions_start_file().read_text(encoding="utf-8").strip()
            try:
                self.partitions_start = self._utc(dt.datetime.fromisoformat(text))
            except ValueError:
                raise ValueError(f"PARTITIONS_START: {self.partitions_start_file()} holds {text!r}, not an ISO date-time") from None
        return self

    def partitions_start_file(self) -> Path:
        return self.home / "partitions_start"

    @field_validator("feed_granularity")
    @classmethod
    def _granularity(cls, value: str) -> str:
        granularity_seconds(value)
        return value

    @field_validator("feed_source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value not in FEED_SOURCES:
            raise ValueError(
                f"FEED_SOURCE must be one of {', '.join(FEED_SOURCES)}, got {value!r} "
                f"(or the reference's {', '.join(EXCHANGE_SOURCES)}: ccxt with that exchange)"
            )
        return value

    @field_validator("feed_kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in ("candle", "tick"):
            raise ValueError(f"FEED_KIND must be 'candle' or 'tick', got {value!r}")
        return value

    def resolved_dagster_home(self) -> Path:
        """DAGSTER_HOME if set, else HOME/dagster_home: where `make run` keeps the Dagster instance."""
        return self.dagster_home or self.home / "dagster_home"


def dagster_instance(settings: Settings) -> Any:
    """The Dagster instance at DAGSTER_HOME, or None when it is not set (the CLI's runs then go
    to an ephemeral instance, the listener's writes go unreported). With DAGSTER_PG_URL set, an
    instance whose dagster.yaml keeps SQLite storage is refused."""
    if settings.dagster_home is None:
        return None
    import dagster as dg

    path = settings.dagster_home.expanduser().resolve()
    if not path.is_dir():
        raise SettingsError(f"DAGSTER_HOME: {path} is not an existing folder")
    instance = dg.DagsterInstance.from_config(str(path))
    if problem := storage_mismatch(instance, settings.dagster_pg_url_set, path):
        instance.dispose()
        raise SettingsError(problem)
    return instance


S = TypeVar("S", bound=BaseSettings)
# The mapping `read_settings` reads instead of os.environ, for the duration of one call.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("coordinator_settings_environ", default=None)


def read_settings(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    """`cls` read from `environ` (default: the process environment, read now), with errors that
    name the variables (`FEED_SOURCE: ...`) rather than the fields."""
    refused = refused_variables(os.environ if environ is None else environ)
    if refused:
        raise SettingsError("; ".join(refused))
    token = _ENVIRON.set(environ)
    try:
        return cls()
    except ValidationError as error:
        raise SettingsError(_explain(cls, error)) from None
    finally:
        _ENVIRON.reset(token)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    return read_settings(Settings, environ)


class SettingsError(ValueError):
    """A setting that does not validate; the message names the variable and the reason."""


class _Environment(EnvSettingsSource):
    """The environment source over `environ` (os.environ when None). A field read from an alias
    is read from that variable only: `home` is COORDINATOR_HOME, never the shell's HOME."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None) -> None:
        super().__init__(settings_cls)
        environ = os.environ if environ is None else environ
        aliased = {name for name, f in settings_cls.model_fields.items() if isinstance(f.validation_alias, str) and f.validation_alias.lower() != name}
        # As the base class reads os.environ: names case-insensitive, empty values unset.
        self.env_vars = {key: value for key, value in ((k.lower(), v) for k, v in environ.items()) if value.strip() and key not in aliased}


def variable_name(cls: type[BaseSettings], field: str) -> str:
    """The environment variable a field is read from."""
    info = cls.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    return alias if isinstance(alias, str) else field.upper()


def _explain(cls: type[BaseSettings], error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = variable_name(cls, field) if field in cls.model_fields else field.upper()
        message = item["msg"].removeprefix("Value error, ")
        if message.startswith(name):  # the validator named the variable already
            lines.append(message)
        else:
            lines.append(f"{name}: {message} (got {item['input']!r})" if "input" in item else f"{name}: {message}")
    return "; ".join(lines)


def _pairs(var: str, raw: str) -> dict[str, str]:
    """`"BTC=BTC/USDC, ETH=ETH/USDC"` → {"BTC": "BTC/USDC", "ETH": "ETH/USDC"}."""
    pairs = {}
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        subject, sep, value = item.partition("=")
        if not sep or not subject.strip() or not value.strip():
            raise ValueError(f"{var}: {item!r} is not SUBJECT=VALUE")
        pairs[subject.strip().upper()] = value.strip()
    return pairs

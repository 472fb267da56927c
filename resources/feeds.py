"""The feed clients as Dagster resources: thin `ConfigurableResource` wrappers over the core's
sources (`coordinator_dagster.feeds`), one per client, each building its client and delegating.

A wrapper's fields are the client's fields, read from the client's pydantic model when the class
is made (`_fields_of`), so a setting is declared once, in the core. A static type checker does
not see them on the wrapper; Dagster and pydantic do (config schema, validation, `dg.EnvVar`).
The client is built on first use from the resource's resolved values (secrets given as
`dg.EnvVar` are resolved when Dagster initializes the resource) and logs retries to the run's log.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any, ClassVar

import dagster as dg
import polars as pl
import pydantic
from pydantic import PrivateAttr

from coordinator_dagster.feeds.ccxt import CcxtSource
from coordinator_dagster.feeds.checks import FeedCheckConfig
from coordinator_dagster.feeds.pyth import PythSource
from coordinator_dagster.feeds.sources import Source, SyntheticSource


def _fields_of(client: type[Source], base: type[dg.ConfigurableResource]) -> Any:
    """`base` with every field of the `client` model (same types and defaults)."""
    fields = {name: (info.annotation, copy.copy(info)) for name, info in client.model_fields.items()}
    return pydantic.create_model(f"{client.__name__}Fields", __base__=base, __module__=__name__, **fields)


class FeedSource(_fields_of(Source, dg.ConfigurableResource)):
    """The feed the assets and sensors read; which client it is comes from FEED_SOURCE."""

    client_type: ClassVar[type[Source]] = Source
    _source: Source | None = PrivateAttr(default=None)

    def source(self) -> Source:
        """The core client with this resource's values (built once per resource instance)."""
        if self._source is None:
            values = {name: getattr(self, name) for name in self.client_type.model_fields}
            self._source = self.client_type(**values).logging_to(dg.get_dagster_logger())
        return self._source

    def check_config(self) -> None:
        self.source().check_config()

    def check_settings(self) -> FeedCheckConfig:
        return self.source().check_settings()

    @property
    def source_name(self) -> str:
        return self.source().source_name

    @property
    def step_seconds(self) -> int:
        return self.source().step_seconds

    def fetch(self, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None) -> pl.DataFrame:
        return self.source().fetch(start, end, now)


class SyntheticFeed(_fields_of(SyntheticSource, FeedSource)):
    """Seeded geometric Brownian motion with volatility clustering; needs no network."""

    client_type: ClassVar[type[Source]] = SyntheticSource


class CcxtFeed(_fields_of(CcxtSource, FeedSource)):
    """Any exchange ccxt supports (FEED_SOURCE=ccxt)."""

    client_type: ClassVar[type[Source]] = CcxtSource

    def source(self) -> CcxtSource:
        return super().source()  # type: ignore[return-value]

    def symbol(self, subject: str) -> str:
        return self.source().symbol(subject)

    def client(self) -> Any:
        """The ccxt exchange object."""
        return self.source().client()

    def check_supported(self) -> None:
        self.source().check_supported()


class PythFeed(_fields_of(PythSource, FeedSource)):
    """Pyth Hermes (FEED_SOURCE=pyth); pass the API key as dg.EnvVar("PYTH_API_KEY")."""

    client_type: ClassVar[type[Source]] = PythSource

    def source(self) -> PythSource:
        return super().source()  # type: ignore[return-value]

    def feed_id(self, subject: str) -> str:
        return self.source().feed_id(subject)

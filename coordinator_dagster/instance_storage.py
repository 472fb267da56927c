"""Where the Dagster instance keeps runs, event logs, schedules and sensor cursors: SQLite files
under DAGSTER_HOME (Dagster's default, one machine) or PostgreSQL when DAGSTER_PG_URL is set.

The switch itself is the `storage: postgres:` block of scripts/dagster_postgres.yaml, which
`make run` (scripts/run.sh) appends to the dagster.yaml it writes; Dagster reads the URL from the
variable when the instance opens, so the URL (a secret: it may hold a password) is never copied
into a file. This module holds the two checks around it: the URL's form, and whether an opened
instance really is on the storage the settings ask for. Messages only, no Dagster import at
module level: `settings.py` raises them as SettingsError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PG_URL_VARIABLE = "DAGSTER_PG_URL"
# dagster-postgres talks to PostgreSQL through psycopg2 (its dependency). SQLAlchemy 2.1, which
# Dagster 1.13 resolves with, reads a bare postgresql:// URL as psycopg 3, which is not installed:
# the driver must be named in the URL.
PG_URL_SCHEME = "postgresql+psycopg2://"
PG_URL_FORM = f"{PG_URL_SCHEME}USER:PASSWORD@HOST:PORT/DATABASE"


def postgres_url_problem(url: str) -> str | None:
    """Why `url` cannot be the instance's PostgreSQL URL, or None. Never quotes the URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or not rest.split("/", 1)[0].rsplit("@", 1)[-1]:
        return f"{PG_URL_VARIABLE} must look like {PG_URL_FORM}"
    if scheme in ("postgresql", "postgres"):
        return (
            f"{PG_URL_VARIABLE} must name the driver: {PG_URL_FORM} (a bare {scheme}:// selects psycopg 3 in "
            "SQLAlchemy 2.1, which is not installed; dagster-postgres uses psycopg2)"
        )
    if scheme != PG_URL_SCHEME.removesuffix("://"):
        return f"{PG_URL_VARIABLE} must look like {PG_URL_FORM}, not start with {scheme}://"
    return None


def storage_kind(instance: Any) -> str:
    """"postgres" when the instance's run, event log and schedule storage are dagster-postgres's,
    "sqlite" when all three are Dagster's SQLite storage, else "mixed"."""
    storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
    modules = {type(s).__module__.split(".")[0] for s in storages}
    if modules == {"dagster_postgres"}:
        return "postgres"
    if all("sqlite" in type(s).__module__ for s in storages):
        return "sqlite"
    return "mixed"


def storage_mismatch(instance: Any, postgres_wanted: bool, dagster_home: Path) -> str | None:
    """Why the opened instance is not on the storage DAGSTER_PG_URL asks for, or None.

    A node whose processes disagree here (the daemon on SQLite, the listener on PostgreSQL) would
    lose events without an error, so the mismatch is refused where the instance is opened."""
    kind = storage_kind(instance)
    if postgres_wanted and kind != "postgres":
        return (
            f"{PG_URL_VARIABLE} is set but {dagster_home / 'dagster.yaml'} keeps the instance in {kind} storage: "
            "add the storage block of scripts/dagster_postgres.yaml to it (make run writes it for you into a "
            "dagster.yaml it generated), or unset the variable"
        )
    # Unset while dagster.yaml names PostgreSQL by other means (postgres_db, another variable): fine.
    return None

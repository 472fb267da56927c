"""SQL over the lake: DuckDB views over the Parquet files, the statuses they derive, the catalog.

`raw_<table>` views read the files; the public views derive the mutable facts instead of storing
them (a prediction is SCORED once a score row exists, or a trading fill; an input RESOLVED once
its truth is known; a checkpoint's status is its newest event). Nothing here holds a DuckDB file lock while it works:
queries run on in-memory connections. The catalog file (`coordinator.duckdb`) only stores the
same views for operators' own DuckDB clients, and is refreshed opportunistically.
"""

from __future__ import annotations

import json
import logging

import duckdb
import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.locks import file_lock
from coordinator_dagster.lake.writes import LakeWrites
from coordinator_dagster.statuses import CheckpointStatus, InputStatus, PredictionStatus

log = logging.getLogger(__name__)

# The rules that derive a prediction's status and reason, over predictions `p` left-joined with
# their scores `s` on SCORE_JOIN and their trading fills `f` on FILL_JOIN: the `predictions` view
# and the API's predictions pages and chart share them.
SCORE_JOIN = "s.prediction_id = p.prediction_id AND s.round_ts = p.round_ts"
# A trading competition has no scores: its replay processes each order into one fill row `f`
# (traded, cut by a limit, or refused with a reason), and that processed prediction is SCORED,
# as the reference marks a trading prediction once its horizon has passed.
FILL_JOIN = 'f.prediction_id = p.prediction_id AND f."at" = p.round_ts'
PREDICTION_STATUS = (
    f"CASE WHEN p.status = '{PredictionStatus.PENDING}' AND (s.prediction_id IS NOT NULL OR f.prediction_id IS NOT NULL) "
    f"THEN '{PredictionStatus.SCORED}' ELSE p.status END"
)
PREDICTION_FAILED_REASON = "COALESCE(p.failed_reason, s.failed_reason)"
NO_FILLS = 'SELECT CAST(NULL AS VARCHAR) AS prediction_id, CAST(NULL AS TIMESTAMPTZ) AS "at" WHERE false'


def fills_join(source: str | None) -> str:
    """The LEFT JOIN of the fills `f` that PREDICTION_STATUS reads, from `source` (a relation
    holding `trading_fills` rows: a view name or a `read_parquet(...)`); none when None."""
    fills = f'SELECT DISTINCT prediction_id, "at" FROM {source}' if source is not None else NO_FILLS
    return f" LEFT JOIN ({fills}) f ON {FILL_JOIN}"


_DUCKDB_TYPES = {
    pl.String: "VARCHAR",
    pl.Float64: "DOUBLE",
    pl.Int64: "BIGINT",
    pl.Boolean: "BOOLEAN",
}


def _duckdb_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if isinstance(dtype, pl.List):
        return _duckdb_type(dtype.inner) + "[]"
    if isinstance(dtype, pl.Decimal):  # exact amounts (trading PnL)
        return f"DECIMAL({dtype.precision}, {dtype.scale})"
    return _DUCKDB_TYPES[dtype.base_type()]


class LakeViews(LakeWrites):
    """The SQL half of `Lake` (it writes only the operator's catalog file)."""

    def _source_sql(self, name: str, absolute: bool = True) -> str:
        table = self.table(name)
        if not self.has_files(name):
            columns = ", ".join(
                f'CAST(NULL AS {_duckdb_type(dtype)}) AS "{col}"' for col, dtype in table.schema.items()
            )
            return f"SELECT {columns} WHERE false"
        hive = "true" if table.layout in ("window", "period") else "false"
        # No union_by_name where every file of a table has the table's schema: without it binding
        # a view reads one file footer instead of all of them. A table that gained columns has
        # older files without them; by name, those read the new columns as null.
        by_name = ", union_by_name=true" if name in schemas.ADDED_COLUMNS else ""
        return f"SELECT * FROM read_parquet('{self.glob(name)}', hive_partitioning={hive}{by_name})"

    def view_statements(self) -> list[str]:
        """CREATE VIEW statements: `raw_<table>` over the files, and the public views."""
        statements = [f"CREATE OR REPLACE VIEW raw_{name} AS {self._source_sql(name)}" for name in self.tables]
        # Every scoring version side by side (hive column `version`), for comparisons and audits.
        for name, table in self.tables.items():
            if table.versioned:
                source = (
                    f"SELECT * FROM read_parquet('{self.all_versions_glob(name)}', hive_partitioning=true)"
                    if any(self.root.joinpath(name).glob(f"version=*/{self._pattern(name)}"))
                    else self._source_sql(name)
                )
                statements.append(f"CREATE OR REPLACE VIEW {name}_all_versions AS {source}")
        passthrough = ["feed_records", "snapshots", "leaderboard", "leaderboard_history", "models", "scores", "checkpoint_events", "ensemble_predictions", "density_round_scores", "late_scores",
                       "checkpoint_reviews", "checkpoint_approvals", "checkpoint_exports", "trading_pnl", "trading_fills"]
        statements += [f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM raw_{name}" for name in passthrough]
        statements.append(
            f"""CREATE OR REPLACE VIEW predictions AS
            SELECT p.* REPLACE ({PREDICTION_STATUS} AS status, {PREDICTION_FAILED_REASON} AS failed_reason),
                s.value AS score_value, s.success AS score_success
            FROM raw_predictions p LEFT JOIN raw_scores s ON {SCORE_JOIN}{fills_join("raw_trading_fills")}"""
        )
        statements.append(
            f"""CREATE OR REPLACE VIEW inputs AS
            SELECT i.*, CASE WHEN r.input_id IS NULL THEN '{InputStatus.RECEIVED}' ELSE '{InputStatus.RESOLVED}' END AS status
            FROM raw_inputs i LEFT JOIN (
                SELECT DISTINCT input_id FROM raw_scores WHERE entry_price IS NOT NULL) r USING (input_id)"""
        )
        # A checkpoint's state is its newest event (events are only appended, with strictly
        # increasing times); its transaction is the newest one recorded. A checkpoint without
        # events is as built: PENDING.
        statements.append(
            """CREATE OR REPLACE VIEW checkpoint_state AS
            SELECT checkpoint_id, arg_max(status, event_at) AS status,
                arg_max(tx_hash, event_at) FILTER (WHERE tx_hash IS NOT NULL) AS tx_hash,
                max(event_at) AS status_changed_at
            FROM raw_checkpoint_events GROUP BY checkpoint_id"""
        )
        statements.append(
            """CREATE OR REPLACE VIEW checkpoints AS
            SELECT c.* REPLACE (COALESCE(e.status, c.status) AS status), e.tx_hash, e.status_changed_at
            FROM raw_checkpoints c LEFT JOIN checkpoint_state e USING (checkpoint_id)"""
        )
        return statements

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with every view; holds no lock on anything."""
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        for statement in self.view_statements():
            con.execute(statement)
        return con

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        con = self.connect()
        try:
            return con.execute(sql, params or []).pl()
        finally:
            con.close()

    def checkpoint_status(self, checkpoint_id: str) -> CheckpointStatus | None:
        """The checkpoint's status by its newest event; None before any event (as built)."""
        found = self.query("SELECT status FROM checkpoint_state WHERE checkpoint_id = ?", [checkpoint_id])
        return CheckpointStatus(found["status"][0]) if found.height else None

    def refresh_catalog(self) -> bool:
        """Rewrite the operator-facing catalog's views; False if someone holds the file.

        Views over a glob stay valid as files come and go, so this only matters when a table
        gains its first file; callers skip it otherwise (see `catalog_is_current`).
        """
        self.home.mkdir(parents=True, exist_ok=True)
        state = {name: bool(self.files(name)) for name in self.tables}
        # The catalog is this host's file (DuckDB refuses a second writer of it anyway): a file
        # lock is enough, and a restore or a run needs no database for it.
        with file_lock(self.root)("catalog", None):
            try:
                con = duckdb.connect(str(self.catalog_path))
            except duckdb.Error as exc:  # an operator's client holds it: not our run's problem
                log.warning("catalog %s not refreshed: %s", self.catalog_path, exc)
                return False
            try:
                con.execute("SET TimeZone = 'UTC'")
                for statement in self.view_statements():
                    con.execute(statement)
            finally:
                con.close()
            (self.home / "catalog.json").write_text(json.dumps(state, sort_keys=True))
        return True

    def catalog_is_current(self) -> bool:
        try:
            recorded = json.loads((self.home / "catalog.json").read_text())
        except (OSError, ValueError):
            return False
        return recorded == {name: bool(self.files(name)) for name in self.tables}

    def ensure_catalog(self) -> None:
        if not self.catalog_is_current():
            self.refresh_catalog()

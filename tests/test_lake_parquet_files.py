"""How the lake writes its Parquet files (`LakeWrites._write_atomic`): rows of the hourly
prediction and score tables sorted by model then round, in row groups with min/max statistics so
a reader asking for a few models skips the rest; other tables keep their rows' order; files
written before (one unsorted row group) read as before."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.lake.writes import ROW_GROUP_ROWS
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT

UTC = dt.timezone.utc
HOUR = dt.datetime(2026, 11, 20, 10, tzinfo=UTC)
MODELS = 12


def predictions(rows_per_model: int) -> pl.DataFrame:
    # Written round by round, models interleaved (as a predict round appends them), newest model first.
    rows = [
        {
            "prediction_id": f"in-{r}/m-{m:02d}", "input_id": f"in-{r}", "scope_key": "btc", "subject": "BTC", "model_id": f"m-{m:02d}",
            "round_ts": HOUR + dt.timedelta(seconds=r), "resolvable_at": HOUR + dt.timedelta(seconds=r + 60), "status": "PENDING",
            "value": float(m * 1000 + r), "output": None, "failed_reason": None, "latency_ms": 1.0, "predicted_at": HOUR,
        }
        for r in range(rows_per_model)
        for m in reversed(range(MODELS))
    ]
    return schemas.conform(pl.DataFrame(rows), schemas.PREDICTIONS, "predictions")


def row_groups(path) -> list[tuple]:
    return duckdb.sql(
        f"SELECT row_group_id, row_group_num_rows, stats_min_value, stats_max_value FROM parquet_metadata('{path}') "
        "WHERE path_in_schema = 'model_id' ORDER BY row_group_id"
    ).fetchall()


def test_an_hour_is_sorted_by_model_and_round_in_row_groups_with_statistics(tmp_path):
    lake = Lake(tmp_path)
    frame = predictions(rows_per_model=400)  # 4,800 rows: three row groups
    path = lake.write("predictions", frame, HOUR.strftime(WINDOW_KEY_FORMAT))
    written = pl.read_parquet(path, hive_partitioning=False)
    assert written.equals(frame.sort("model_id", "round_ts"))
    groups = row_groups(path)
    assert [g[1] for g in groups] == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, len(frame) - 2 * ROW_GROUP_ROWS]
    # Each row group covers a few models: the first holds m-00 .. m-05 only.
    assert groups[0][2:] == ("m-00", "m-05") and groups[-1][3] == "m-11"
    # By the statistics, a reader asking for one model needs one row group of the three.
    assert [g[0] for g in groups if g[2] <= "m-01" <= g[3]] == [0]
    # The lake's own view reads it whole, as before.
    assert lake.query("SELECT count(*) AS n, sum(value) AS s FROM raw_predictions").row(0) == (len(frame), frame["value"].sum())


def test_tables_without_model_and_round_keep_their_order_and_older_files_still_read(tmp_path):
    lake = Lake(tmp_path)
    models = schemas.conform(
        pl.DataFrame({"model_id": ["m-b", "m-a"], "name": ["B", "A"], "cruncher": ["b", "a"], "cruncher_index": [2, 1],
                      "entrypoint": ["x:y", "x:y"], "joined_at": [HOUR, HOUR], "active": [True, True], "status": ["healthy", "healthy"]}),
        schemas.MODELS, "models",
    )
    assert pl.read_parquet(lake.write("models", models))["model_id"].to_list() == ["m-b", "m-a"]
    # A file as the lake wrote it before: one row group, rows in the order given.
    old = predictions(rows_per_model=50)
    path = lake.partition_path("predictions", HOUR.strftime(WINDOW_KEY_FORMAT))
    path.parent.mkdir(parents=True)
    old.write_parquet(path, compression="zstd", statistics=True)
    assert len(row_groups(path)) == 1
    got = lake.query("SELECT model_id, value FROM raw_predictions WHERE model_id = 'm-03' ORDER BY round_ts")
    assert got["value"].to_list() == [3000.0 + r for r in range(50)]

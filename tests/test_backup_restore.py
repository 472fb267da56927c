"""`coordinator backup` / `coordinator restore`: a node's lake and Dagster instance survive the round
trip (same lake rows, same runs and materializations in the restored instance); a damaged archive or
a non-empty target changes nothing; a backup taken during writes restores consistently."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import re
import sqlite3
import tarfile
import threading
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from coordinator_dagster.lake.backup import BackupError, backup, restore
from coordinator_dagster.cli.main import main
from coordinator_dagster.definitions import build_defs
from coordinator_dagster.cli.demo import run_demo
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.settings import Settings
from resources import ClockResource

TABLES = {
    # table: the columns that identify a row
    "feed_records": ["subject", "ts_event"],
    "inputs": ["input_id"],
    "predictions": ["prediction_id"],
    "scores": ["prediction_id"],
    "snapshots": ["model_id", "period_start"],
    "leaderboard": ["model_id"],
    "checkpoints": ["checkpoint_id"],
}
ASSETS = ["feed_records", "inputs", "predictions", "scores", "snapshots", "leaderboard", "checkpoints"]


def lake_rows(home: Path, table: str) -> pl.DataFrame:
    """Every row of a lake table, read through DuckDB over its Parquet files, in a stable order."""
    files = sorted((home / "lake" / table).rglob("*.parquet"))
    assert files, f"{table}: no files under {home}"
    listing = ", ".join(f"'{f}'" for f in files)
    con = duckdb.connect()
    try:
        frame = con.execute(f"SELECT * FROM read_parquet([{listing}], union_by_name = true)").pl()
    finally:
        con.close()
    return frame.sort(TABLES[table])


def instance_state(dagster_home: Path) -> dict:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        return {
            "runs": sorted((run.run_id, run.status.value) for run in runs),
            "events": {run.run_id: len(instance.all_logs(run.run_id)) for run in runs},
            "partitions": {
                key: sorted(instance.get_materialized_partitions(dg.AssetKey(key))) for key in ASSETS
            },
            "latest": {
                key: (event.run_id if (event := instance.get_latest_materialization_event(dg.AssetKey(key))) else None)
                for key in ASSETS
            },
        }


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A node's lake after a one-day demo, and a persistent SQLite instance recording runs that
    re-materialize some of it (the whole demo against SQLite would take four times as long)."""
    root = tmp_path_factory.mktemp("node")
    home, dagster_home = root / "home", root / "home" / "dagster_home"
    dagster_home.mkdir(parents=True)
    run_demo(home, dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc), 1)
    # The demo's pinned clock: past the window's truth, its grace period and its weekly checkpoint.
    defs = build_defs(settings=Settings(home=home), resource_overrides={"clock": ClockResource(fixed_now="2026-11-22T00:00:00+00:00")})
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for key in ("2026-11-20-00:00", "2026-11-20-01:00"):
            dg.materialize(defs.assets, selection=["scores", "snapshots"], partition_key=key, resources=defs.resources, instance=instance)
        dg.materialize(defs.assets, selection=["leaderboard"], resources=defs.resources, instance=instance)
    # What a running node leaves around that must not travel: logs, pid files, locks, temp files.
    (home / "logs").mkdir()
    (home / "logs" / "api.log").write_text("log line\n")
    (home / "run").mkdir()
    (home / "run" / "api.pid").write_text("1\n")
    (home / "lake" / "inputs" / ".data.parquet.123.abc.tmp").write_bytes(b"half a file")
    Lake(home).refresh_catalog()
    return home, dagster_home


@pytest.fixture(scope="module")
def archive(node, tmp_path_factory):
    home, dagster_home = node
    path = tmp_path_factory.mktemp("backups") / "node.tar.gz"
    assert main(["backup", str(path), "--home", str(home), "--dagster-home", str(dagster_home)]) == 0
    return path


def test_round_trip_restores_the_same_rows_runs_and_materializations(node, archive, tmp_path, capsys):
    home, dagster_home = node
    before = instance_state(dagster_home)
    assert len(before["runs"]) == 3 and all(status == "SUCCESS" for _, status in before["runs"])
    assert before["partitions"]["scores"] == ["2026-11-20-00:00", "2026-11-20-01:00"]
    assert before["latest"]["leaderboard"] is not None

    target = tmp_path / "restored"
    target_dagster = tmp_path / "restored-instance"
    assert main(["restore", str(archive), "--home", str(target), "--dagster-home", str(target_dagster)]) == 0
    assert "catalog rebuilt" in capsys.readouterr().out

    for table in TABLES:
        assert lake_rows(target, table).equals(lake_rows(home, table)), table
    assert instance_state(target_dagster) == before
    # The catalog was rebuilt for the new location, so operators' DuckDB queries work there.
    con = duckdb.connect(str(target / "coordinator.duckdb"), read_only=True)
    try:
        [(count,)] = con.execute("SELECT count(*) FROM predictions").fetchall()
    finally:
        con.close()
    assert count == lake_rows(home, "predictions").height
    # Runtime state stayed behind.
    assert not (target / "logs").exists() and not (target / "run").exists()
    assert not list(target.rglob("*.tmp"))


def test_the_archive_manifest_lists_every_file_with_its_checksum(archive):
    with tarfile.open(archive, "r:gz") as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())
    assert manifest["format"] == "coordinator-backup"
    assert manifest["dagster_home_in_home"] == "dagster_home"
    assert set(manifest["files"]) == names - {"MANIFEST.json"}
    assert "dagster_home/history/runs.db" in names
    assert all(len(meta["sha256"]) == 64 for meta in manifest["files"].values())
    assert not [n for n in names if n.startswith(("home/logs/", "home/run/", "home/dagster_home/")) or n.endswith(".tmp")]
    assert "home/coordinator.duckdb" not in names


def test_restore_defaults_the_instance_into_the_home_where_it_was(archive, tmp_path):
    result = restore(archive, tmp_path / "home")
    assert result.dagster_home == (tmp_path / "home" / "dagster_home").resolve()
    assert (tmp_path / "home" / "dagster_home" / "history" / "runs.db").is_file()
    assert (tmp_path / "home" / "lake" / "predictions").is_dir()


def test_a_non_empty_target_is_refused_unless_forced(archive, tmp_path, capsys):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert main(["restore", str(archive), "--home", str(target)]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no staging folder left

    assert main(["restore", str(archive), "--home", str(target), "--force"]) == 0
    assert not (target / "keep.txt").exists()
    assert (target / "lake" / "predictions").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # the replaced content is gone


def _rewrite(archive: Path, out: Path, change) -> None:
    """Copy the archive member by member, letting `change(name, data)` alter or drop members."""
    with tarfile.open(archive, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read()
            result = change(member.name, data)
            if result is None:
                continue
            name, data = result
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def damaged(archive, tmp_path_factory) -> dict[str, Path]:
    """Damaged copies of the archive, by kind of damage."""
    tmp_path = tmp_path_factory.mktemp("damaged")
    raw = archive.read_bytes()
    cases = {}
    cases["truncated"] = tmp_path / "truncated.tar.gz"
    cases["truncated"].write_bytes(raw[: len(raw) * 2 // 3])
    flipped = bytearray(raw)
    for i in range(len(raw) // 2, len(raw) // 2 + 64):
        flipped[i] ^= 0xFF
    cases["bit flips"] = tmp_path / "flipped.tar.gz"
    cases["bit flips"].write_bytes(bytes(flipped))
    cases["not gzip"] = tmp_path / "plain.tar.gz"
    cases["not gzip"].write_bytes(b"this is not an archive at all")
    cases["checksum mismatch"] = tmp_path / "tampered.tar.gz"
    _rewrite(archive, cases["checksum mismatch"],
             lambda name, data: (name, data + b"x" if name.endswith("leaderboard/data.parquet") else data))
    cases["member missing"] = tmp_path / "missing.tar.gz"
    _rewrite(archive, cases["member missing"],
             lambda name, data: None if name.endswith("leaderboard/data.parquet") else (name, data))
    cases["path escape"] = tmp_path / "escape.tar.gz"
    _rewrite(archive, cases["path escape"],
             lambda name, data: ("home/../../escaped.txt", data) if name.endswith("leaderboard/data.parquet") else (name, data))
    cases["no manifest"] = tmp_path / "nomanifest.tar.gz"
    _rewrite(archive, cases["no manifest"], lambda name, data: None if name == "MANIFEST.json" else (name, data))
    return cases


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated", "corrupt or truncated"),
        # Damage inside compressed data is caught by zlib or, when it still inflates, by the checksums.
        ("bit flips", "corrupt or truncated|checksum mismatch"),
        ("not gzip", "corrupt or truncated"),
        ("checksum mismatch", "checksum mismatch"),
        ("member missing", "missing from the archive"),
        ("path escape", "unexpected member"),
        ("no manifest", "not a coordinator backup"),
    ],
)
def test_a_damaged_archive_is_refused_and_the_targets_stay_untouched(archive, damaged, tmp_path, capsys, case, message):
    target = tmp_path / "target"
    target.mkdir()
    instance = tmp_path / "instance"
    assert main(["restore", str(damaged[case]), "--home", str(target), "--dagster-home", str(instance)]) == 1
    assert re.search(message, capsys.readouterr().err)
    assert list(target.iterdir()) == []
    assert not instance.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # no staging folder left
    assert not (tmp_path.parent / "escaped.txt").exists()

    # The same targets accept the intact archive afterwards.
    assert main(["restore", str(archive), "--home", str(target), "--dagster-home", str(instance)]) == 0


def test_backup_refuses_bad_locations_and_leaves_no_partial_archive(node, tmp_path, capsys):
    home, dagster_home = node
    assert main(["backup", str(home / "inside.tar.gz"), "--home", str(home)]) == 1
    assert "inside a folder being backed up" in capsys.readouterr().err
    assert main(["backup", str(tmp_path / "x.tar.gz"), "--home", str(tmp_path / "nowhere")]) == 1
    assert "holds no lake" in capsys.readouterr().err
    assert main(["backup", str(tmp_path / "missing" / "x.tar.gz"), "--home", str(home)]) == 1
    assert "not an existing folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_backup_taken_during_writes_restores_consistently(tmp_path):
    """Lake files replaced and SQLite rows committed while backups run: every archive verifies,
    every restored Parquet file is whole and every restored database passes its integrity check."""
    home = tmp_path / "home"
    dagster_home = home / "dagster_home"
    (dagster_home / "history").mkdir(parents=True)
    lake = Lake(home)
    db_path = dagster_home / "history" / "runs.db"
    setup = sqlite3.connect(db_path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, payload TEXT)")
    setup.commit()
    setup.close()
    schema = lake.table("leaderboard").schema

    def board(rows: int, first_rank: int) -> pl.DataFrame:
        return pl.DataFrame({c: [None] * rows for c in schema}, schema=schema).with_columns(
            pl.Series("model_id", [f"m{j}" for j in range(rows)]),
            pl.Series("rank", range(first_rank, first_rank + rows), dtype=schema["rank"]),
        )

    lake.write("leaderboard", board(1, 0))

    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        con = sqlite3.connect(db_path)
        i = 0
        try:
            while not stop.is_set():
                i += 1
                lake.write("leaderboard", board(200, i))
                with con:
                    con.executemany("INSERT INTO runs (payload) VALUES (?)", [("x" * 500,)] * 50)
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)
        finally:
            con.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        archives = []
        for n in range(5):
            path = tmp_path / f"b{n}.tar.gz"
            backup(path, home, dagster_home)
            archives.append(path)
    finally:
        stop.set()
        thread.join()
    assert not errors
    for n, path in enumerate(archives):
        target = tmp_path / f"r{n}"
        restore(path, target)
        board = pl.read_parquet(target / "lake" / "leaderboard" / "data.parquet")
        assert board.height in (1, 200)
        con = sqlite3.connect(target / "dagster_home" / "history" / "runs.db")
        try:
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            (rows,) = con.execute("SELECT count(*) FROM runs").fetchone()
        finally:
            con.close()
        assert rows % 50 == 0  # whole transactions only
    with pytest.raises(BackupError, match="not empty"):
        restore(archives[0], tmp_path / "r0")
    assert gzip.open(archives[-1]).read(1)  # a valid gzip stream


def test_restore_refuses_while_a_node_runs_on_the_home(archive, tmp_path):
    home = tmp_path / "home"
    (home / "run").mkdir(parents=True)
    (home / "run" / "run.pid").write_text(f"{os.getpid()}\n")  # a live process: this test's own
    with pytest.raises(BackupError, match="a node is running"):
        restore(archive, home, force=True)
    assert [p.name for p in home.iterdir()] == ["run"]

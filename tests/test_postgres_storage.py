"""The Dagster instance on PostgreSQL (DAGSTER_PG_URL, dagster-postgres): a real server from the
machine's binaries (tests/postgres_server.py, one per session), an instance opened from the
dagster.yaml block `make run` writes, and the node's paths that touch the instance run against it:
sensor → run → materialization, a partition backfill, a schedule's run, and the feed listener's
runless events. The same paths on SQLite are tests/test_sensors.py, tests/test_assets.py and
tests/test_stream_synthetic.py."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from assets import default_assets
from coordinator_dagster.definitions import build_defs
from coordinator_dagster.instance_storage import storage_kind
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.settings import Settings, SettingsError, dagster_instance, load_settings
from sensors import predict_sensor, score_sensor
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources
from tests.process_support import wait_for

ROOT = Path(__file__).resolve().parents[1]
PG_BLOCK = ROOT / "scripts" / "dagster_postgres.yaml"
RANGE = {"dagster/asset_partition_range_start": "2026-11-20-08:00", "dagster/asset_partition_range_end": "2026-11-20-10:00"}


def open_instance(home: Path, dagster_home: Path, url: str | None) -> dg.DagsterInstance:
    """The instance as every process of the node opens it (coordinator_dagster.settings)."""
    environ = {"COORDINATOR_HOME": str(home), "DAGSTER_HOME": str(dagster_home), **({"DAGSTER_PG_URL": url} if url else {})}
    return dagster_instance(load_settings(environ))


@pytest.fixture
def pg_instance(tmp_path, pg_url, monkeypatch):
    """An instance on a fresh PostgreSQL database, from the block scripts/run.sh appends."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(PG_BLOCK.read_text())
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)  # Dagster reads it from the environment
    instance = open_instance(tmp_path / "home", dagster_home, pg_url)
    yield instance
    instance.dispose()
    # Nothing of the instance went to SQLite files beside dagster.yaml.
    assert not list(dagster_home.rglob("*.db")), list(dagster_home.rglob("*.db"))


def reopened(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """A second instance on the same storage, as another process of the node would open it."""
    return dg.DagsterInstance.from_ref(instance.get_ref())


# ---- the setting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://node:secret@db:5432/dagster", "must name the driver: postgresql+psycopg2://"),
        ("postgres://node:secret@db/dagster", "must name the driver"),
        ("mysql://node:secret@db/dagster", "not start with mysql://"),
        ("db:5432", "must look like postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DATABASE"),
    ],
)
def test_the_url_names_psycopg2_and_is_never_echoed(url, message):
    with pytest.raises(SettingsError, match="DAGSTER_PG_URL") as error:
        load_settings({"DAGSTER_PG_URL": url})
    assert message in str(error.value) and "secret" not in str(error.value)
    assert load_settings({"DAGSTER_PG_URL": "postgresql+psycopg2://node:secret@db:5432/dagster"}).dagster_pg_url_set
    assert not load_settings({}).dagster_pg_url_set


def test_an_instance_left_on_sqlite_is_refused_when_the_url_is_set(tmp_path):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.raises(SettingsError, match=r"DAGSTER_PG_URL is set but .*dagster.yaml keeps the instance in sqlite storage"):
        open_instance(tmp_path / "home", dagster_home, "postgresql+psycopg2://node@127.0.0.1:9/none")
    instance = open_instance(tmp_path / "home", dagster_home, None)
    assert storage_kind(instance) == "sqlite"
    instance.dispose()


# ---- against a real server -------------------------------------------------------------------------


@pytest.mark.process
def test_sensor_requests_run_and_materialize_with_the_instance_on_postgresql(home, pg_instance):
    """The predict and score sensors read the instance (is the node predicting live?) and their
    requests run as the daemon launches them: runs, events and materializations land in PostgreSQL."""
    assert storage_kind(pg_instance) == "postgres"
    cursors: dict[str, str | None] = {}
    launched = []
    first = HOUR + dt.timedelta(minutes=20, seconds=5)
    assert dg.materialize(default_assets, selection=["feed_records"], resources=pipeline_resources(home, first), partition_key="2026-11-20-09:00", instance=pg_instance).success
    for now in (first, first + dt.timedelta(minutes=2)):
        resources = pipeline_resources(home, now)
        assert dg.materialize(default_assets, selection=["feed_records"], resources=resources, partition_key=HOUR_KEY, instance=pg_instance).success
        defs = build_defs(settings=Settings(home=home), resource_overrides=resources)
        for sensor, job in ((predict_sensor, "predict_job"), (score_sensor, "score_job")):
            result = sensor(dg.build_sensor_context(instance=pg_instance, cursor=cursors.get(job), resources=resources))
            cursors[job] = result.cursor
            for request in [r for r in result.run_requests if not r.run_key.startswith("close:")]:
                tags = {**request.tags, "dagster/run_key": request.run_key}
                run = defs.resolve_job_def(job).execute_in_process(instance=pg_instance, partition_key=request.partition_key, tags=tags)
                assert run.success
                launched.append(request.run_key)

    assert launched == ["predict:2026-11-20T10:20:00Z", "score:2026-11-20T10:19:00Z", "predict:2026-11-20T10:22:00Z", "score:2026-11-20T10:21:00Z"]
    lake = Lake(home)
    counts = dict(lake.query("SELECT status, count(*) AS n FROM predictions GROUP BY ALL").iter_rows())
    assert counts == {"ABSENT": 19 * 2 * 3, "SCORED": 3 * 2 * 3, "PENDING": 1 * 2 * 3}  # as on SQLite (test_sensors.py)
    other = reopened(pg_instance)
    try:
        records = other.get_run_records(filters=dg.RunsFilter(job_name="predict_job"))
        assert sorted(r.dagster_run.tags["dagster/run_key"] for r in records) == ["predict:2026-11-20T10:20:00Z", "predict:2026-11-20T10:22:00Z"]
        assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
        for key in ("predictions", "scores"):
            found = other.fetch_materializations(dg.AssetKey(key), limit=10).records
            assert len(found) == 2 and {r.partition_key for r in found} == {HOUR_KEY}, key
        assert len(other.fetch_materializations(dg.AssetKey("leaderboard"), limit=10).records) == 2  # unpartitioned
        # The live predict runs stored in PostgreSQL are what the next score tick reads: with 10:23's
        # candle in, scoring holds until that live round is predicted.
        later = pipeline_resources(home, first + dt.timedelta(minutes=3))
        assert dg.materialize(default_assets, selection=["feed_records"], resources=later, partition_key=HOUR_KEY, instance=other).success
        held = score_sensor(dg.build_sensor_context(instance=other, cursor=cursors["score_job"], resources=later))
        assert isinstance(held, dg.SkipReason) and "waits for the live round's predictions first" in held.skip_message
    finally:
        other.dispose()


@pytest.mark.process
def test_a_partition_backfill_records_each_hour_in_postgresql(tmp_path, pg_instance):
    """A backfill of three hours runs as one run (the assets' single-run backfill policy), twice:
    the instance on PostgreSQL holds the same runs and per-hour events as one on SQLite."""

    def backfill_twice(instance: dg.DagsterInstance, home: Path) -> list[tuple[str | None, tuple[str, ...]]]:
        resources = pipeline_resources(home, HOUR + dt.timedelta(hours=3))
        for _ in range(2):
            assert dg.materialize(default_assets, selection=["feed_records"], resources=resources, tags=RANGE, instance=instance).success
        other = reopened(instance)
        try:
            assert other.get_materialized_partitions(dg.AssetKey("feed_records")) == {"2026-11-20-08:00", "2026-11-20-09:00", "2026-11-20-10:00"}
            runs = other.get_run_records(filters=dg.RunsFilter(tags=RANGE))
            assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
            events = other.fetch_materializations(dg.AssetKey("feed_records"), limit=100).records
            assert {e.run_id for e in events} == {r.dagster_run.run_id for r in runs}
            return sorted((e.partition_key, tuple(sorted(e.asset_materialization.metadata))) for e in events)
        finally:
            other.dispose()

    on_postgres = backfill_twice(pg_instance, tmp_path / "home")
    with dg.instance_for_test() as sqlite:
        assert storage_kind(sqlite) == "sqlite"
        assert on_postgres == backfill_twice(sqlite, tmp_path / "sqlite-home")
    assert Lake(tmp_path / "home").query("SELECT count(*) AS n FROM feed_records")["n"][0] == 3 * 60 * 2  # three hours of minutes, two subjects, once


@pytest.mark.process
def test_the_ingest_schedules_run_lands_in_postgresql(home, pg_instance):
    resources = pipeline_resources(home, HOUR + dt.timedelta(hours=1, minutes=1, seconds=5))
    defs = build_defs(settings=Settings(home=home), resource_overrides=resources)
    schedule = defs.resolve_schedule_def("ingest_schedule")
    tick = dt.datetime(2026, 11, 20, 11, 1, tzinfo=dt.timezone.utc)
    request = schedule(dg.build_schedule_context(instance=pg_instance, scheduled_execution_time=tick))
    assert request.partition_key == "2026-11-20-11:00"
    assert defs.resolve_job_def(schedule.job_name).execute_in_process(instance=pg_instance, partition_key=request.partition_key, tags=request.tags).success
    other = reopened(pg_instance)
    try:
        [record] = other.get_run_records(filters=dg.RunsFilter(job_name=schedule.job_name))
        assert record.dagster_run.tags["coordinator/tick"] == tick.isoformat()
        [event] = other.fetch_materializations(dg.AssetKey("feed_records"), limit=10).records
        assert event.partition_key == "2026-11-20-11:00" and event.run_id == record.dagster_run.run_id
    finally:
        other.dispose()


@pytest.mark.process
def test_the_listeners_runless_events_land_in_postgresql(tmp_path, pg_instance):
    from coordinator_dagster.feeds.sources import SyntheticSource
    from coordinator_dagster.feeds.streaming.listener import running
    from coordinator_dagster.feeds.streaming.sources import SyntheticStream
    from tests.stream_support import make_listener, stored, wait_until

    feed = SyntheticSource(subjects=["BTC", "ETH"], seed=11, granularity="1s")
    listener, lake, _ = make_listener(tmp_path / "home", SyntheticStream(feed), feed, instance=pg_instance)
    with running(listener):
        wait_until(lambda: listener.stats.written >= 4, what="4 live seconds written")
    other = reopened(pg_instance)
    try:
        events = other.fetch_materializations(dg.AssetKey("feed_records"), limit=1000).records
        assert events and all(e.run_id == "" for e in events)  # runless: reported, not run
        hours = {row[0].strftime("%Y-%m-%d-%H:00") for row in stored(lake).select("ts_event").rows()}
        assert {e.partition_key for e in events} == hours
    finally:
        other.dispose()


@pytest.mark.process
def test_make_run_writes_the_postgresql_block_while_the_url_is_set(tmp_path, pg_url, monkeypatch):
    """scripts/run.sh (with stand-in commands) appends scripts/dagster_postgres.yaml to the
    dagster.yaml it generates; the file opens an instance on the server; unset, the next start
    writes the SQLite file again."""
    from tests.test_scripts import LAUNCH, RUN_SH, _run_sh_env, _stop

    home = tmp_path / "home"

    def start(**extra: str) -> str:
        env = _run_sh_env(tmp_path, **extra)
        pidfiles = [tmp_path / f"{name}.pids" for name in ("api", "dagster", "models", "feeds")]
        for path in pidfiles:
            path.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, str(LAUNCH), "bash", str(RUN_SH)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            # Every stand-in running (as tests/test_scripts.py waits), or run.sh gave up: its output says why.
            assert wait_for(lambda: all(p.exists() and p.read_text() for p in pidfiles) or proc.poll() is not None, 120)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, out
        finally:
            _stop(proc, [int(pid) for p in pidfiles if p.exists() for pid in p.read_text().split()])
        return (home / "dagster_home" / "dagster.yaml").read_text()

    generated = start(DAGSTER_PG_URL=pg_url)
    assert generated.startswith("# generated by scripts/run.sh") and generated.rstrip().endswith(PG_BLOCK.read_text().rstrip())
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    instance = open_instance(home, home / "dagster_home", pg_url)
    assert storage_kind(instance) == "postgres"
    instance.dispose()
    monkeypatch.delenv("DAGSTER_PG_URL")
    again = start(RUN_SKIP_SETTINGS_CHECK="1")
    assert again.rstrip() == (ROOT / "scripts" / "dagster.yaml").read_text().rstrip()


def test_backup_and_restore_say_the_instance_is_the_databases_to_keep(tmp_path, monkeypatch, capsys):
    from coordinator_dagster.cli.main import main
    from tests.api_fixtures import seed_lake

    home = seed_lake(tmp_path / "home").lake.home
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://node:secret@127.0.0.1:9/none")
    archive = tmp_path / "node.tar.gz"
    assert main(["backup", str(archive), "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "not backed up here; use pg_dump --format=custom" in out and "secret" not in out
    assert main(["restore", str(archive), "--home", str(tmp_path / "restored")]) == 0
    assert "not restored here; use pg_restore" in capsys.readouterr().out

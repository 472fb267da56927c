"""Partitions start where the node's data starts: PARTITIONS_START, else the start a home
remembers (`make run` decides it once: where its data starts), else the embedded example's 2026-01-01; `build_defs`
moves every window asset, the checkpoints and the jobs to it."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from coordinator_dagster.cli.main import main
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.definitions import build_defs
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.partitions import (
    CHECKPOINT_PARTITIONS,
    DEFAULT_START,
    WINDOW_PARTITIONS,
    checkpoint_partitions,
    window_partitions,
)
from coordinator_dagster.settings import Settings, load_settings
from resources import SyntheticFeed

UTC = dt.timezone.utc
WEDNESDAY = dt.datetime(2026, 11, 18, 14, 25, tzinfo=UTC)
WINDOW_ASSETS = {"feed_records", "inputs", "predictions", "scores", "snapshots"}


def test_each_definition_starts_with_the_period_holding_the_start():
    assert window_partitions(WEDNESDAY).get_first_partition_key() == "2026-11-18-14:00"
    # Weekly periods run Sunday to Sunday: the week holding a Wednesday began on the Sunday before.
    assert checkpoint_partitions("weekly", WEDNESDAY).get_first_partition_key() == "2026-11-15"
    assert checkpoint_partitions("daily", WEDNESDAY).get_first_partition_key() == "2026-11-18"
    # The default start keeps the module-level definitions the asset modules declare.
    assert checkpoint_partitions("weekly", DEFAULT_START) is CHECKPOINT_PARTITIONS["weekly"]
    assert WINDOW_PARTITIONS.get_first_partition_key() == "2026-01-01-00:00"
    with pytest.raises(ValueError, match="unknown checkpoint period"):
        checkpoint_partitions("hourly", WEDNESDAY)


def _first_keys(defs: dg.Definitions) -> dict[str, str | None]:
    return {
        spec.key.to_user_string(): spec.partitions_def.get_first_partition_key()
        for spec in defs.resolve_all_asset_specs()
        if spec.partitions_def is not None
    }


def test_build_defs_moves_every_partitioned_asset_and_job_to_the_start(tmp_path):
    defs = build_defs(settings=Settings(home=tmp_path, partitions_start=WEDNESDAY), contract=CrunchContract(checkpoint_period="daily"))
    assert _first_keys(defs) == {**dict.fromkeys(WINDOW_ASSETS, "2026-11-18-14:00"), "checkpoints": "2026-11-18", "audit_bundle": "2026-11-18"}
    for job in ("ingest_job", "predict_job", "score_job"):
        assert defs.resolve_job_def(job).partitions_def.get_first_partition_key() == "2026-11-18-14:00", job
    assert defs.resolve_job_def("checkpoint_job").partitions_def.get_first_partition_key() == "2026-11-18"
    # Without a start: the embedded example's first day, as before.
    plain = build_defs(settings=Settings(home=tmp_path / "other"))
    assert _first_keys(plain) == {**dict.fromkeys(WINDOW_ASSETS, "2026-01-01-00:00"), "checkpoints": "2026-01-04", "audit_bundle": "2026-01-04"}


def test_the_start_comes_from_the_variable_else_from_the_home(tmp_path):
    assert load_settings({"COORDINATOR_HOME": str(tmp_path)}).partitions_start is None
    (tmp_path / "partitions_start").write_text("2026-11-18T00:00:00+00:00\n")
    assert load_settings({"COORDINATOR_HOME": str(tmp_path)}).partitions_start == dt.datetime(2026, 11, 18, tzinfo=UTC)
    given = load_settings({"COORDINATOR_HOME": str(tmp_path), "PARTITIONS_START": "2026-11-20T05:00"})
    assert given.partitions_start == dt.datetime(2026, 11, 20, 5, tzinfo=UTC)  # naive means UTC
    (tmp_path / "partitions_start").write_text("last tuesday")
    with pytest.raises(ValueError, match="PARTITIONS_START: .* not an ISO date-time"):
        load_settings({"COORDINATOR_HOME": str(tmp_path)})


def test_a_new_home_remembers_the_hour_it_first_ran(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COORDINATOR_HOME", str(tmp_path))
    monkeypatch.delenv("PARTITIONS_START", raising=False)
    before = dt.datetime.now(UTC) - dt.timedelta(hours=1)
    assert main(["check-settings", "--remember-partitions-start"]) == 0
    after = dt.datetime.now(UTC) - dt.timedelta(hours=1)
    remembered = dt.datetime.fromisoformat((tmp_path / "partitions_start").read_text().strip())
    # The hour before now: the listener's first backfill reaches back an hour.
    assert remembered in {t.replace(minute=0, second=0, microsecond=0) for t in (before, after)}
    assert f"partitions start {remembered:%Y-%m-%d %H:%M} UTC" in capsys.readouterr().out
    # Remembered: a later start does not move it.
    (tmp_path / "partitions_start").write_text("2026-11-02T00:00:00+00:00\n")
    assert main(["check-settings", "--remember-partitions-start"]) == 0
    assert (tmp_path / "partitions_start").read_text() == "2026-11-02T00:00:00+00:00\n"


def test_a_home_with_data_starts_with_the_hour_of_its_first_record(tmp_path, monkeypatch):
    monkeypatch.setenv("COORDINATOR_HOME", str(tmp_path))
    monkeypatch.delenv("PARTITIONS_START", raising=False)
    records = SyntheticFeed(subjects=["BTC"], seed=7).fetch(WEDNESDAY, WEDNESDAY + dt.timedelta(minutes=10))
    Lake(tmp_path).write("feed_records", records, "2026-11-18-14:00")
    assert main(["check-settings", "--remember-partitions-start"]) == 0
    assert (tmp_path / "partitions_start").read_text().strip() == "2026-11-18T14:00:00+00:00"


def test_sensors_request_nothing_before_the_partitions_start(tmp_path):
    from assets import default_assets
    from sensors import score_sensor
    from tests.conftest import HOUR, pipeline_resources

    # A first start at 11:20: the closing pass reaches back to 09:00, before the node's data.
    now = HOUR + dt.timedelta(hours=1, minutes=20, seconds=5)
    resources = pipeline_resources(tmp_path, now)
    for key in ("2026-11-20-10:00", "2026-11-20-11:00"):
        dg.materialize(default_assets, selection=["feed_records"], resources=resources, partition_key=key)
    keys = {}
    for start in (None, HOUR + dt.timedelta(hours=1)):
        defs = build_defs(settings=Settings(home=tmp_path, partitions_start=start), resource_overrides=resources)
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(instance=instance, resources=resources, repository_def=defs.get_repository_def())
            keys[start] = [request.partition_key for request in score_sensor(context).run_requests]
    assert keys[None] == ["2026-11-20-09:00", "2026-11-20-11:00"]  # from 2026-01-01: the closing pass too
    assert keys[HOUR + dt.timedelta(hours=1)] == ["2026-11-20-11:00"]

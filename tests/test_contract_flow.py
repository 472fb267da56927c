"""One contract per `build_defs`: the partitions, the schedule, the assets and the sensors all
see the very contract it was given (or read from CRUNCH_CONFIG_MODULE when it was called)."""

import datetime as dt

import dagster as dg
import pytest

from coordinator_dagster.contracts import CrunchContract, default_contract
from coordinator_dagster.definitions import build_defs
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.settings import Settings
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources


def daily_v9() -> CrunchContract:
    return default_contract().model_copy(update={"checkpoint_period": "daily", "scoring_version": "v9"})


def weekly_v3() -> CrunchContract:
    return default_contract().model_copy(update={"scoring_version": "v3"})


def checkpoint_partitions(defs: dg.Definitions) -> dg.PartitionsDefinition:
    return next(s for s in defs.resolve_all_asset_specs() if s.key.to_user_string() == "checkpoints").partitions_def


def test_the_assets_run_with_the_contract_build_defs_was_given(home):
    contract = daily_v9()
    resources = pipeline_resources(home, HOUR + dt.timedelta(hours=3))
    del resources["contract"]  # the assets must get it from build_defs, not from a resource of their own
    defs = build_defs(settings=Settings(home=home), contract=contract, resource_overrides=resources)
    assert isinstance(checkpoint_partitions(defs), dg.DailyPartitionsDefinition)
    assert defs.resolve_schedule_def("checkpoint_schedule").cron_schedule == "5 0 * * *"

    with dg.instance_for_test() as instance:
        for job, key in (("ingest_job", HOUR_KEY), ("ingest_job", "2026-11-20-11:00"), ("predict_job", HOUR_KEY),
                         ("score_job", HOUR_KEY), ("checkpoint_job", "2026-11-20")):
            assert defs.resolve_job_def(job).execute_in_process(partition_key=key, instance=instance).success, (job, key)

    lake = Lake.for_contract(home, contract)
    assert set(lake.read_all("scores")["scoring_version"]) == {"v9"}
    assert set(lake.read_all("snapshots")["scoring_version"]) == {"v9"}
    assert not Lake(home).has_files("scores")  # nothing went to the default version's folders
    [checkpoint] = lake.read_all("checkpoints").to_dicts()
    assert checkpoint["checkpoint_id"] == "CKP-2026-11-20"
    assert checkpoint["period_end"] - checkpoint["period_start"] == dt.timedelta(days=1)
    assert checkpoint["model_count"] == 3
    # checkpoint_job also wrote the period's audit bundle, and it re-derives under this contract.
    from coordinator_dagster.audit.verify import verify_bundle

    [bundled] = (home / "audit_bundles" / "CKP-2026-11-20").glob("*.zip")
    assert verify_bundle(bundled).ok, verify_bundle(bundled).message


def test_each_build_defs_reads_the_contract_module_of_its_moment(tmp_path, monkeypatch):
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", "tests.test_contract_flow:daily_v9")
    first = build_defs(settings=Settings(home=tmp_path))
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", "tests.test_contract_flow:weekly_v3")
    second = build_defs(settings=Settings(home=tmp_path))

    assert isinstance(checkpoint_partitions(first), dg.DailyPartitionsDefinition)
    assert first.resources["contract"].scoring_version == "v9"
    assert isinstance(checkpoint_partitions(second), dg.WeeklyPartitionsDefinition)
    assert second.resources["contract"].scoring_version == "v3"


def test_the_sensors_see_the_same_contract(home):
    """The predict sensor of a contract with one BTC scope asks only for BTC's round."""
    btc_only = default_contract().model_copy(update={"scheduled_predictions": default_contract().scheduled_predictions[:1]})
    resources = pipeline_resources(home, HOUR + dt.timedelta(minutes=20, seconds=5))
    del resources["contract"]
    defs = build_defs(settings=Settings(home=home), contract=btc_only, resource_overrides=resources)
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("ingest_job").execute_in_process(partition_key=HOUR_KEY, instance=instance).success
        sensor = defs.resolve_sensor_def("predict_sensor")
        context = dg.build_sensor_context(instance=instance, resources=defs.resources, definitions=defs)
        [request] = sensor(context).run_requests
    assert request.tags["coordinator/scopes"] == "btc-60s"


def test_two_different_contracts_are_refused(home):
    with pytest.raises(ValueError, match="pass the contract once"):
        build_defs(settings=Settings(home=home), contract=daily_v9(), resource_overrides={"contract": weekly_v3()})

"""Shared fixtures: a lake in tmp_path and the resources that point the assets at it."""

import datetime as dt

import pytest

from coordinator_dagster.contracts import default_contract
from coordinator_dagster.lake.store import Lake
from resources import ClockResource, InProcessModelRunner, LakeResource, SyntheticFeed

# A fixed historical hour: every test that runs the pipeline uses it, so results are reproducible.
HOUR = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
HOUR_KEY = "2026-11-20-10:00"


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def lake(home):
    return Lake(home, window_names=default_contract().aggregation.windows)


def pipeline_resources(home, now: dt.datetime, **overrides):
    resources = {
        "lake": LakeResource(home=str(home)),
        "contract": default_contract(),
        "feed": SyntheticFeed(subjects=["BTC", "ETH"], seed=7),
        "model_runner": InProcessModelRunner(timeout_seconds=5.0),
        "clock": ClockResource(fixed_now=now.isoformat()),
    }
    resources.update(overrides)
    return resources


@pytest.fixture
def resources(home):
    """Resources with the clock pinned three hours after HOUR: its rounds are all due and scorable."""
    return pipeline_resources(home, HOUR + dt.timedelta(hours=3))

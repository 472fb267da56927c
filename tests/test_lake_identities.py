"""One listing of the lake's files for the API (`coordinator_dagster.lake.memory.Identities`): an
hourly table is listed at most once per recheck interval whoever asks (the in-memory tables or the
response cache), a load's own listing is remembered, and the other tables are looked at on every
ask."""

from __future__ import annotations

from api.app import create_app
from api.cache import ResponseCache
from api.settings import ApiSettings
from coordinator_dagster.lake import memory
from coordinator_dagster.lake.reader import LakeReader
from tests.api_fixtures import leaderboard_frame, seed_extras, seed_lake


def test_an_hourly_table_is_listed_once_per_interval_for_every_asker(tmp_path, looked_at) -> None:
    seeded = seed_lake(tmp_path / "home")
    seed_extras(seeded.lake)
    now = [0.0]
    identities = memory.Identities(seeded.lake, recheck=1.0, clock=lambda: now[0])
    first = identities("snapshots")
    assert identities("snapshots") == first and looked_at == ["snapshots"]
    seeded.lake.write("leaderboard", leaderboard_frame(version=3))
    identities("leaderboard")
    identities("leaderboard")
    assert looked_at.count("leaderboard") == 2  # a single-file table: looked at every time
    now[0] += 1.0
    identities("snapshots")
    assert looked_at.count("snapshots") == 2
    identities.forget("snapshots")  # a load took its own listing: the next ask lists again
    identities("snapshots")
    assert looked_at.count("snapshots") == 3


def test_the_api_cache_and_the_reader_share_one_listing(tmp_path, looked_at) -> None:
    seeded = seed_lake(tmp_path / "home")
    seed_extras(seeded.lake)
    app = create_app(ApiSettings(home=seeded.lake.home))
    cache = response_cache(app)
    assert cache.identities is app.state.reader.identities
    # Within one interval the reader's check and the cache's check list the snapshots once.
    reader: LakeReader = app.state.reader
    reader.identities.recheck = 3600.0
    looked_at.clear()
    reader.is_current()
    cache._identity("snapshots")
    assert looked_at.count("snapshots") <= 1
    # A test driving the cache's clock by hand keeps the cache's own listing.
    assert response_cache(create_app(ApiSettings(home=seeded.lake.home), cache_clock=lambda: 0.0)).identities is None


def response_cache(app):
    layer = app.build_middleware_stack()
    while not isinstance(layer, ResponseCache):
        layer = layer.app
    return layer

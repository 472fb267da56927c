"""The synthetic source's live mode (a real-time stream, the embedded default's offline path)
and `coordinator feeds listen` end to end: the values equal the batch path's, row for row; the
process reports its writes to the Dagster instance, and stops cleanly on SIGINT."""

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from coordinator_dagster.feeds.streaming.listener import running
from coordinator_dagster.feeds.streaming.sources import SyntheticStream
from coordinator_dagster.feeds.sources import SyntheticSource
from tests.stream_support import fast_config, make_listener, materializations, stored, wait_until

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

ROOT = Path(__file__).resolve().parents[1]


def batch(feed: SyntheticSource, frame: pl.DataFrame) -> pl.DataFrame:
    start = frame["ts_event"].min()
    end = frame["ts_event"].max() + dt.timedelta(seconds=feed.step_seconds)
    return feed.fetch(start, end).sort("subject", "ts_event")


def test_the_live_synthetic_stream_writes_what_the_batch_path_computes(tmp_path):
    feed = SyntheticSource(subjects=["BTC", "ETH"], seed=11, granularity="1s")
    # The start-up backfill (5 s through the batch source) and the live steps must join up.
    listener, lake, instance = make_listener(tmp_path / "home", SyntheticStream(feed), feed, config=fast_config(initial_backfill=dt.timedelta(seconds=5)))
    with running(listener):
        wait_until(lambda: listener.stats.closed >= 6, what="3 live seconds × 2 subjects")
        wait_until(lambda: listener.stats.gap_records >= 10, what="the start-up backfill")
    frame = stored(lake)
    assert frame.equals(batch(feed, frame))  # same values, no second missing, none twice
    assert frame.height >= 16
    assert listener.stats.closed >= 6 and listener.stats.gap_records >= 10
    assert materializations(instance)


def test_the_live_synthetic_stream_serves_ticks_too(tmp_path):
    feed = SyntheticSource(subjects=["SOL"], seed=3, granularity="1s", kind="tick")
    listener, lake, _ = make_listener(tmp_path / "home", SyntheticStream(feed), feed)
    with running(listener):
        wait_until(lambda: listener.stats.written >= 2, what="2 live ticks")
    frame = stored(lake)
    assert frame.equals(batch(feed, frame))
    assert set(frame["kind"]) == {"tick"} and frame["open"].is_null().all()


def test_coordinator_feeds_listen_streams_into_the_lake_and_reports_to_dagster(tmp_path):
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("")
    env = {**os.environ, "COORDINATOR_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "FEED_GRANULARITY": "1s", "FEED_SOURCE": "synthetic", "FEED_SUBJECTS": "BTC,ETH"}
    log = (tmp_path / "listen.log").open("w")
    # scripts/launch.py resets SIGINT to its default: a background child inherits it ignored here.
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "launch.py"), "--", str(ROOT / ".venv" / "bin" / "coordinator"), "feeds", "listen", "--initial-backfill-minutes", "0.05"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        from coordinator_dagster.lake.store import Lake

        lake = Lake(home)
        wait_until(lambda: lake.has_files("feed_records") and stored(lake).height >= 8, what="records from the listener process")
        process.send_signal(signal.SIGINT)
        assert process.wait(120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    output = (tmp_path / "listen.log").read_text()
    assert "connected: synthetic stream" in output and "stopped:" in output, output
    frame = stored(lake)
    assert frame.equals(batch(SyntheticSource(subjects=["BTC", "ETH"], seed=7, granularity="1s"), frame))
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        events = materializations(instance)
    finally:
        instance.dispose()
    hour = frame["ts_event"].max().strftime("%Y-%m-%d-%H:00")
    assert hour in {e.partition for e in events}
    assert all(e.metadata["source"].value == "synthetic" for e in events)

"""End to end: `coordinator demo` runs a whole competition, feed to checkpoint, reproducibly."""

import datetime as dt
import json
import os
import subprocess
import sys

import polars as pl
import pytest

from coordinator_dagster.cli.demo import run_demo
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake.store import Lake

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess


def test_demo_command_runs_feed_to_checkpoint_and_is_reproducible(tmp_path):
    # The node's home: the demo must keep to a home of its own inside it and say which lake it ranked.
    node_home = tmp_path / "node"
    cli_home = node_home / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MODELS_MANIFEST")} | {"COORDINATOR_HOME": str(node_home)}
    completed = subprocess.run(
        [sys.executable, "-m", "coordinator_dagster.cli.main", "demo", "--days", "1", "--start", "2026-11-20"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    assert f"into its own home {cli_home}" in out
    assert f"Leaderboard of the lake {Lake(cli_home).root} (the demo window's predictions: 8,640 SCORED)" in out
    assert not (node_home / "lake").exists()  # the node's own lake untouched
    assert "Checkpoint CKP-2026-11-15" in out
    assert "total 1,000,000,000 (must be 1,000,000,000)" in out
    assert "] 15/15 done" in out.replace("\r", "\n")  # the progress bar reached the end

    lake = Lake(cli_home)
    counts = dict(lake.query("SELECT status, count(*) FROM predictions GROUP BY ALL").iter_rows())
    assert counts == {"SCORED": 1440 * 2 * 3}  # one day of minute rounds, BTC and ETH, three models
    [checkpoint] = lake.read("checkpoints", "2026-11-15").to_dicts()
    emission = json.loads(checkpoint["emission"])
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) == FRAC64_MULTIPLIER

    # The same demo in this process, into another lake: identical results row for row.
    again = run_demo(tmp_path / "again", dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc), 1)
    assert again.leaderboard.equals(lake.read("leaderboard"))
    assert again.checkpoints.equals(lake.read("checkpoints", "2026-11-15"))
    for table in ("feed_records", "inputs", "scores", "snapshots"):
        assert Lake(tmp_path / "again").read_all(table).equals(lake.read_all(table)), table
    predictions = [Lake(home).read_all("predictions").drop("predicted_at", "latency_ms") for home in (tmp_path / "again", cli_home)]
    assert predictions[0].equals(predictions[1])
    assert pl.Series(again.leaderboard["rank"]).to_list() == [1, 2, 3]

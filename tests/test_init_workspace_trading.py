"""`coordinator init-workspace NAME --template trading`: the generated workspace passes its own
tests (`make test`) and its demo (`make demo`) runs the trading pack end to end: orders replayed
into portfolios, a leaderboard and a checkpoint ranked by net PnL."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from tests.test_init_workspace import init, make, read_table

pytestmark = pytest.mark.process  # make starts subprocesses


def test_the_trading_workspace_passes_its_tests_and_runs_its_demo(tmp_path):
    assert init("trade-cup", "--template", "trading", "--dir", str(tmp_path)) == 0
    workspace = tmp_path / "trade-cup"
    manifest = json.loads((workspace / "trade_cup" / "models" / "manifest.json").read_text())
    assert {entry["model_id"] for entry in manifest} == {"momentum", "reversion"}

    tests = make(workspace, "test")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"\d+ passed", tests.stdout) and "failed" not in tests.stdout

    demo = make(workspace, "demo", "DEMO_ARGS=--days 1", timeout=300)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Leaderboard of the lake" in demo.stdout and "Checkpoint CKP-" in demo.stdout

    predictions = read_table(workspace, "predictions")
    assert predictions.height == 2 * 2 * 1440  # two models, BTC and ETH, every minute of a day
    fills = read_table(workspace, "trading_fills")
    assert fills.height == predictions.filter(pl.col("status") == "PENDING").height  # every order is replayed
    assert fills["filled"].is_not_null().sum() > 0
    # The demo counts the replayed orders as SCORED, none left PENDING.
    [counted] = [line for line in demo.stdout.splitlines() if "the demo window's predictions:" in line]
    assert f"{fills.height:,} SCORED" in counted and "PENDING" not in counted, counted

    board = read_table(workspace, "leaderboard").sort("rank")
    assert board["ranking_key"].unique().to_list() == ["net_pnl"]
    assert set(board["model_id"]) == {"momentum", "reversion"}
    values = board["ranking_value"].to_list()
    assert values == sorted(values, reverse=True)
    snapshots = read_table(workspace, "snapshots")
    newest = snapshots.filter(pl.col("period_end") == snapshots["period_end"].max()).sort("value", descending=True)
    # The leaderboard ranks each model's net PnL at the newest hour, as its snapshot reports it.
    assert newest["model_id"].to_list() == board["model_id"].to_list()
    assert newest["value"].to_list() == values

    [checkpoint] = read_table(workspace, "checkpoints").iter_rows(named=True)
    assert checkpoint["ranking_key"] == "net_pnl"
    entries = json.loads(checkpoint["entries"])
    assert [e["model_id"] for e in entries] == board["model_id"].to_list()
    emission = json.loads(checkpoint["emission"])
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) == FRAC64_MULTIPLIER

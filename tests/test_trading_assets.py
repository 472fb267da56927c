"""The trading pack as Dagster assets over a lake: `trading_replay` and its `snapshots`, the
leaderboard and a checkpoint ranked by net PnL; a replay reproduces the PnL files byte for byte
(hours replayed in one run, or the last hour alone catching up from nothing); the trading build
loads; the API serves the trading fields and widgets."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest

from assets.checkpoints import build_checkpoints_asset
from assets.leaderboard import leaderboard
from assets.trading import trading_replay, trading_snapshots
from coordinator_dagster.contracts import Aggregation, CrunchContract
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.partitions import CHECKPOINT_PARTITIONS, WINDOW_KEY_FORMAT
from coordinator_dagster.scoring.trading import TradingConfig, performance, replay
from resources import ClockResource, LakeResource
from tests.test_trading_simulator import T0, _random_session

HOUR = dt.timedelta(hours=1)
HOURS = 4  # the random session's span
TRADING_TABLES = ("trading_pnl", "trading_fills", "trading_state")
CONTRACT = CrunchContract(
    trading=TradingConfig(),  # target mode, the engine's default costs and limits
    aggregation=Aggregation(windows={"pnl_1h": 1, "pnl_3h": 3}, value_field="net_pnl", ranking_key="net_pnl"),
    metrics=[],
    checkpoint_period="daily",
)
CHECKPOINTS = build_checkpoints_asset(CHECKPOINT_PARTITIONS["daily"])
RANGE = {"dagster/asset_partition_range_start": T0.strftime(WINDOW_KEY_FORMAT), "dagster/asset_partition_range_end": (T0 + (HOURS - 1) * HOUR).strftime(WINDOW_KEY_FORMAT)}


def build_trading_contract() -> CrunchContract:
    return CONTRACT


def seed(home: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The random session's orders as predictions and its prices as one-minute candles, each
    candle closing (open time + 1 min) at the price's time."""
    orders, prices = _random_session(5)
    lake = Lake.for_contract(home, CONTRACT)
    candles = prices.select(
        pl.lit("synthetic").alias("source"), "subject", pl.lit("candle").alias("kind"), pl.lit("1m").alias("granularity"),
        (pl.col("ts_event") - dt.timedelta(minutes=1)).alias("ts_event"),
        *[pl.col("close").alias(c) for c in ("open", "high", "low", "close")], pl.lit(1.0).alias("volume"), pl.lit(None, pl.Float64).alias("price"),
    )
    rows = orders.with_columns(
        pl.col("prediction_id").alias("input_id"), pl.lit("target").alias("scope_key"), pl.col("round_ts").alias("resolvable_at"),
        pl.lit(None, pl.Float64).alias("value"), pl.lit(None, pl.String).alias("failed_reason"), pl.lit(1.0).alias("latency_ms"),
        pl.col("round_ts").alias("predicted_at"),
    )
    hour = lambda column: pl.col(column).dt.truncate("1h")  # noqa: E731
    for key_frame, name, column in ((candles, "feed_records", "ts_event"), (rows, "predictions", "round_ts")):
        for (start,), part in key_frame.group_by(hour(column).alias("h")):
            lake.write(name, part.drop("h", strict=False) if "h" in part.columns else part, start.strftime(WINDOW_KEY_FORMAT))
    models = [{"model_id": m, "name": m.upper(), "cruncher": f"c{i}", "cruncher_index": i, "entrypoint": "x:Y", "joined_at": T0, "active": True, "status": "healthy"} for i, m in enumerate(("m1", "m2", "m3"))]
    lake.write("models", pl.DataFrame(models, schema=schemas.MODELS))
    return orders, prices


def materialize(home: Path, selection: list[str], **kwargs) -> None:
    resources = {"lake": LakeResource(home=str(home)), "contract": CONTRACT, "clock": ClockResource(fixed_now=(T0 + dt.timedelta(days=1, hours=1)).isoformat())}
    result = dg.materialize([trading_replay, trading_snapshots, leaderboard, CHECKPOINTS], selection=selection, resources=resources, instance=dg.DagsterInstance.ephemeral(), **kwargs)
    assert result.success


def table_bytes(home: Path) -> dict[str, bytes]:
    root = Lake.for_contract(home, CONTRACT).root
    return {str(p.relative_to(root)): p.read_bytes() for name in TRADING_TABLES for p in sorted((root / name).rglob("*.parquet"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("trading")
    orders, prices = seed(home)
    materialize(home, ["trading_replay", "snapshots"], tags=RANGE)
    materialize(home, ["leaderboard"])
    materialize(home, ["checkpoints"], partition_key=T0.strftime("%Y-%m-%d"))
    return home, replay(orders, prices, CONTRACT.trading)


def test_the_assets_write_the_replays_pnl_and_fills(built):
    home, whole = built
    lake = Lake.for_contract(home, CONTRACT)
    assert lake.read_all("trading_pnl").write_csv() == whole.pnl.write_csv()
    assert lake.read_all("trading_fills").write_csv() == whole.fills.write_csv()
    assert lake.read_all("trading_state").height == HOURS


def test_the_predictions_view_shows_replayed_orders_as_scored(built, tmp_path):
    home, whole = built
    lake = Lake.for_contract(home, CONTRACT)
    # Stored PENDING (trading writes no scores); the view derives SCORED from each order's fill.
    assert set(lake.read_all("predictions")["status"]) == {"PENDING"}
    counted = dict(lake.query("SELECT status, count(*) FROM predictions GROUP BY ALL").iter_rows())
    assert counted == {"SCORED": whole.fills.height} and whole.fills.height == HOURS * 4 * 3
    # An order the replay has not reached yet stays PENDING.
    later = tmp_path / "later"
    shutil.copytree(home, later)
    lake = Lake.for_contract(later, CONTRACT)
    hour = T0 + HOURS * HOUR
    lake.write("predictions", lake.read_all("predictions").head(1).with_columns(
        pl.lit("late").alias("prediction_id"), pl.lit(hour).alias("round_ts").cast(pl.Datetime("us", "UTC"))), hour.strftime(WINDOW_KEY_FORMAT))
    by_id = dict(lake.query("SELECT prediction_id, status FROM predictions").iter_rows())
    assert by_id.pop("late") == "PENDING" and set(by_id.values()) == {"SCORED"}


def test_a_replay_reproduces_the_pnl_files_byte_for_byte(built, tmp_path):
    home, _ = built
    first = table_bytes(home)
    assert len(first) == 3 * HOURS
    again = tmp_path / "again"
    shutil.copytree(home, again)
    for name in TRADING_TABLES:
        shutil.rmtree(Lake.for_contract(again, CONTRACT).root / name)
    # The last hour alone: it finds no earlier state, so it replays every hour before it first.
    materialize(again, ["trading_replay"], partition_key=(T0 + (HOURS - 1) * HOUR).strftime(WINDOW_KEY_FORMAT))
    assert table_bytes(again) == first
    # Re-materializing one hour in the middle replaces it with the same bytes.
    materialize(again, ["trading_replay"], partition_key=(T0 + HOUR).strftime(WINDOW_KEY_FORMAT))
    assert table_bytes(again) == first


def test_snapshots_leaderboard_and_checkpoint_rank_by_net_pnl(built):
    home, whole = built
    lake = Lake.for_contract(home, CONTRACT)
    summary = performance.summary(whole)
    snapshots = lake.read_all("snapshots")
    assert snapshots.height == HOURS * 3  # three models, each with a book from the first hour
    last = snapshots.filter(pl.col("period_start") == T0 + (HOURS - 1) * HOUR).sort("model_id")
    for row, expected in zip(last.iter_rows(named=True), summary.sort("model_id").iter_rows(named=True), strict=True):
        figures = json.loads(row["result_summary"])
        assert row["value"] == figures["net_pnl"] == float(expected["net_pnl"])
        assert figures["max_drawdown"] == float(expected["max_drawdown"])
        assert (figures["hit_rate"], figures["sortino_ratio"], figures["trade_count"]) == (expected["hit_rate"], expected["sortino_ratio"], expected["trade_count"])

    board = lake.read("leaderboard")
    assert board["model_id"].to_list() == summary["model_id"].to_list()
    assert board["rank"].to_list() == summary["rank"].to_list()
    assert board["ranking_value"].to_list() == [float(v) for v in summary["net_pnl"]]
    assert board["pnl_3h"].to_list() != board["ranking_value"].to_list()  # the first hour is outside
    assert board["as_of"].to_list() == [T0 + HOURS * HOUR] * 3

    [checkpoint] = lake.read_all("checkpoints").iter_rows(named=True)
    entries = json.loads(checkpoint["entries"])
    assert checkpoint["ranking_key"] == "net_pnl"
    # The period (the day) holds every hour: the net PnL made in it is the net PnL now.
    assert [(e["model_id"], e["period_net_pnl"]) for e in entries] == [(r["model_id"], str(r["net_pnl"])) for r in summary.iter_rows(named=True)]
    emission = json.loads(checkpoint["emission"])
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) == FRAC64_MULTIPLIER


def test_the_trading_build_loads_with_its_job_and_sensor(tmp_path):
    from coordinator_dagster.definitions import build_defs
    from coordinator_dagster.settings import load_settings

    settings = load_settings({}).model_copy(update={"home": tmp_path})
    defs = build_defs(settings=settings, contract=CONTRACT)
    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert {"trading_replay", "snapshots", "leaderboard", "checkpoints"} <= keys
    assert "scores" not in keys
    assert {node.name for node in defs.resolve_job_def("trading_job").graph.node_defs} == {"trading_replay", "snapshots", "leaderboard"}
    assert {s.name for s in repository.sensor_defs} == {"predict_sensor", "trading_sensor"}


@pytest.mark.process
def test_the_api_serves_trading_fields_and_pnl_widgets(built, monkeypatch):
    from api.app import create_app
    from api.settings import ApiSettings
    from tests.api_fixtures import serve

    home, whole = built
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", "tests.test_trading_assets:build_trading_contract")
    summary = {r["model_id"]: r for r in performance.summary(whole).iter_rows(named=True)}
    with serve(create_app(ApiSettings(home=home))) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        rows = http.get("/reports/leaderboard").json()
        assert [r["model_id"] for r in rows] == list(summary)
        for row in rows:
            expected = summary[row["model_id"]]
            assert row["net_pnl"] == float(expected["net_pnl"]) == row["ranking_value"]
            for name in ("unrealized_pnl", "realized_pnl", "total_fees", "total_carry_costs", "max_drawdown"):
                assert row[name] == float(expected[name]), name
            assert (row["open_position_count"], row["hit_rate"], row["sortino_ratio"]) == (expected["open_position_count"], expected["hit_rate"], expected["sortino_ratio"])

        page = http.get("/reports/snapshots", params={"model_id": "m1"}).json()
        assert page["total"] == HOURS
        assert {"net_pnl", "realized_pnl", "unrealized_pnl", "total_fees", "total_carry_costs", "open_position_count", "max_drawdown", "hit_rate", "sortino_ratio"} <= set(page["items"][0]["result_summary"])

        widgets = http.get("/reports/schema/metrics-widgets").json()
        assert [w["displayName"] for w in widgets] == ["P&L Over Time", "P&L Breakdown", "Max Drawdown", "Sortino Ratio", "Open Positions", "Reward History"]
        series = {s["name"] for w in widgets if w["endpointUrl"] == "/reports/models/metrics" for s in w["nativeConfiguration"]["yAxis"]["series"]}
        columns = [c["property"] for c in http.get("/reports/schema/leaderboard-columns").json()]
        assert columns[:6] == ["username", "model_id", "net_pnl", "hit_rate", "max_drawdown", "sortino_ratio"]
        # Every charted series is a field of the rows the widgets read.
        points = http.get("/reports/models/metrics").json()
        assert points and series <= set(points[-1])


@pytest.mark.process
def test_the_apis_predictions_pages_and_chart_agree_with_the_view_on_replayed_orders(built, tmp_path, monkeypatch):
    from api.app import create_app
    from api.settings import ApiSettings
    from tests.api_fixtures import serve

    home = tmp_path / "home"
    shutil.copytree(built[0], home)
    lake = Lake.for_contract(home, CONTRACT)
    # One order past the replay: no fill yet, so it stays PENDING everywhere.
    hour = T0 + HOURS * HOUR
    lake.write("predictions", lake.read_all("predictions").head(1).with_columns(
        pl.lit("late").alias("prediction_id"), pl.lit(hour).alias("round_ts").cast(pl.Datetime("us", "UTC"))), hour.strftime(WINDOW_KEY_FORMAT))
    expected = dict(lake.query("SELECT prediction_id, status FROM predictions").iter_rows())
    assert expected.pop("late") == "PENDING" and set(expected.values()) == {"SCORED"} and len(expected) == HOURS * 4 * 3
    expected["late"] = "PENDING"
    monkeypatch.setenv("CRUNCH_CONFIG_MODULE", "tests.test_trading_assets:build_trading_contract")
    period = {"start": T0.isoformat(), "end": (T0 + dt.timedelta(days=1)).isoformat()}
    with serve(create_app(ApiSettings(home=home))) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        page = http.get("/v1/reports/predictions", params={**period, "limit": 100}).json()
        assert page["total"] == len(expected)
        assert {r["prediction_id"]: r["status"] for r in page["items"]} == expected
        scored = http.get("/v1/reports/predictions", params={**period, "status": "SCORED"}).json()
        pending = http.get("/v1/reports/predictions", params={**period, "status": "PENDING"}).json()
        assert (scored["total"], pending["total"]) == (len(expected) - 1, 1)
        chart = http.get("/reports/predictions", params=period).json()
        assert {r["prediction_id"]: r["status"] for r in chart} == expected


def test_the_trading_sensor_requests_a_windows_replay_once_its_rounds_resolve(home):
    from assets import default_assets
    from sensors.trading import trading_sensor
    from tests.conftest import HOUR as SENSOR_HOUR
    from tests.conftest import HOUR_KEY, pipeline_resources

    now = SENSOR_HOUR + dt.timedelta(minutes=20, seconds=5)
    resources = pipeline_resources(home, now, contract=CONTRACT)
    dg.materialize(default_assets, selection=["feed_records"], resources=resources, partition_key=HOUR_KEY)
    with dg.instance_for_test() as instance:
        result = trading_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        requests = [r for r in result.run_requests if r.partition_key == HOUR_KEY]
        assert requests and {r.job_name for r in requests} <= {None, "trading_job"}
        # Its own run keys: a round's replay and the hour's closing pass, never a score run's key.
        for r in result.run_requests:
            kind = "trade-close" if r.tags["coordinator/scopes"] == "closed-hour" else "trade"
            assert r.run_key == f"{kind}:{r.tags['coordinator/round']}"
        assert any(r.run_key.startswith("trade:") for r in requests)
        again = trading_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=result.cursor))
        assert isinstance(again, dg.SkipReason)

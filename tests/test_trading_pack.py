"""The trading pack: hour-by-hour replay with saved states, snapshots, the standings by net PnL
(leaderboard, checkpoint entries and their payout), the assets over a lake (a replay reproduces
the PnL files byte for byte, whatever order the hours run in), and the API's trading fields."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import polars as pl
import pytest

from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.emission import default_build_emission
from coordinator_dagster.scoring.trading import CostModel, TradingConfig, replay
from coordinator_dagster.scoring.trading import hourly, performance, standings
from tests.test_trading_simulator import T0, _random_session, feed, predictions

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
D = Decimal
FREE = TradingConfig(cost_model=CostModel(Decimal(0), Decimal(0), Decimal(0)), signal_mode="order", max_position_size=D(10_000), max_portfolio_size=D(20_000))


def hour_by_hour(orders: pl.DataFrame, prices: pl.DataFrame, config: TradingConfig, hours: int) -> tuple[list, hourly.HourState]:
    """Replay hour by hour, each hour's state saved as text and loaded back before the next."""
    state, results = hourly.HourState(), []
    for i in range(hours):
        start, end = T0 + i * HOUR, T0 + (i + 1) * HOUR
        result, state = hourly.replay_hour(
            orders.filter(pl.col("round_ts").is_between(start, end, closed="left")),
            prices.filter(pl.col("ts_event").is_between(start, end, closed="left")),
            config,
            state,
        )
        results.append(result)
        state = hourly.load(hourly.dump(state), config)
    return results, state


def test_hour_by_hour_with_saved_states_equals_one_replay_and_its_figures():
    orders, prices = _random_session(3)
    config = TradingConfig()
    whole = replay(orders, prices, config)
    results, state = hour_by_hour(orders, prices, config, 4)
    assert pl.concat([r.pnl for r in results]).write_csv() == whole.pnl.write_csv()
    assert pl.concat([r.fills for r in results]).write_csv() == whole.fills.write_csv()
    # The running figures folded hour by hour are the summary's over every row at once.
    summary = {row["model_id"]: row for row in performance.summary(whole).iter_rows(named=True)}
    assert set(summary) == set(state.replay.books) == {"m1", "m2", "m3"}
    for model_id, expected in summary.items():
        got = hourly.figures(state, model_id)
        for name in ("net_pnl", "unrealized_pnl", "realized_pnl", "total_fees", "total_carry_costs", "open_position_count", "max_drawdown", "trade_count", "hit_rate", "sortino_ratio"):
            assert got[name] == expected[name], (model_id, name)
    assert any(summary[m]["sortino_ratio"] is not None for m in summary)


def test_snapshot_rows_carry_the_figures_and_the_hours_counts():
    orders = predictions(
        (T0, "m1", "BTC", {"action": "buy", "amount": 1000}),
        (T0 + 10 * dt.timedelta(minutes=1), "m1", "BTC", {"action": "hold"}),
    )
    prices = feed((T0, "BTC", 100.0), (T0 + dt.timedelta(minutes=30), "BTC", 110.0))
    result, state = hourly.replay_hour(orders, prices, FREE, hourly.HourState())
    [row] = hourly.snapshot_rows(state, orders, result.fills, T0, "v1").iter_rows(named=True)
    assert (row["model_id"], row["period_end"], row["prediction_count"], row["scored_count"], row["failed_count"]) == ("m1", T0 + HOUR, 2, 1, 1)
    summary = json.loads(row["result_summary"])
    assert row["value"] == summary["net_pnl"] == 100.0
    assert list(summary) == list(hourly.FIGURES)
    assert (summary["unrealized_pnl"], summary["open_position_count"], summary["trade_count"], summary["hit_rate"]) == (100.0, 1, 0, None)


def period_states() -> tuple[hourly.HourState, hourly.HourState]:
    """Prices 100 (day 0), 110 (day 1), 120 (day 2), no costs. m1 long 1000 from day 0, m2 short
    1000 from day 0, m3 long 2000 from day 1 (@ 110). The period runs from day 1 to day 2."""
    prices = feed((T0, "BTC", 100.0), (T0 + DAY, "BTC", 110.0), (T0 + 2 * DAY, "BTC", 120.0))
    orders = predictions(
        (T0, "m1", "BTC", {"action": "buy", "amount": 1000}),
        (T0, "m2", "BTC", {"action": "sell", "amount": 1000}),
        (T0 + DAY, "m3", "BTC", {"action": "buy", "amount": 2000}),
    )
    start = hourly.replay_hour(orders.filter(pl.col("round_ts") <= T0 + DAY), prices.filter(pl.col("ts_event") <= T0 + DAY), FREE, hourly.HourState())[1]
    end = hourly.replay_hour(orders.filter(pl.col("round_ts") > T0 + DAY), prices.filter(pl.col("ts_event") > T0 + DAY), FREE, start)[1]
    return start, end


MODELS = pl.DataFrame(
    {"model_id": ["m1", "m2", "m3"], "name": ["One", "Two", "Three"], "cruncher": ["a", "b", "c"], "cruncher_index": [0, 1, 2]},
)


def test_checkpoint_entries_rank_the_net_pnl_made_in_the_period_and_pay_by_rank():
    """Net PnL at the period's start: m1 100, m2 −100, m3 0; at its end: m1 200, m2 −200,
    m3 2000 × 10 / 110 = 181.818181818182. Made in the period: m3 181.82 > m1 100 > m2 −100, so
    m3 ranks 1 though m1 ends with more. The default emission pays ranks 1, 2, 3 their tiers
    (35 %, 10 %, 10 %) plus an equal third of the 45 % left: 50 %, 25 %, 25 %."""
    start, end = period_states()
    entries = standings.checkpoint_entries(start, end, MODELS)
    assert [(e["rank"], e["model_id"], e["period_net_pnl"]) for e in entries] == [
        (1, "m3", "181.818181818182"),
        (2, "m1", "100.000000000000"),
        (3, "m2", "-100.000000000000"),
    ]
    assert entries[0]["net_pnl"] == pytest.approx(181.818181818182) and entries[1]["net_pnl"] == 200.0
    assert [e["cruncher_index"] for e in entries] == [2, 0, 1]
    emission = default_build_emission(entries, "crunch-pubkey")
    assert [(r.cruncher_index, r.reward_pct) for r in emission.cruncher_rewards] == [(2, 500_000_000), (0, 250_000_000), (1, 250_000_000)]
    # No state before the period: the whole net PnL counts; none after it: no entries.
    assert [e["model_id"] for e in standings.checkpoint_entries(None, end, MODELS)] == ["m1", "m3", "m2"]
    assert standings.checkpoint_entries(start, None, MODELS) == []


def test_leaderboard_ranks_by_net_pnl_now_with_the_pnl_made_per_window():
    start, end = period_states()
    as_of = T0 + 2 * DAY + HOUR
    board = standings.leaderboard(end, {"pnl_1d": start, "pnl_all": None}, MODELS, as_of)
    assert board.schema == schemas.leaderboard_schema(["pnl_1d", "pnl_all"])
    rows = board.select("rank", "model_id", "model_name", "ranking_key", "ranking_value", "pnl_1d", "pnl_all").rows()
    assert rows == [
        (1, "m1", "One", "net_pnl", 200.0, 100.0, 200.0),
        (2, "m3", "Three", "net_pnl", pytest.approx(181.818181818182), pytest.approx(181.818181818182), pytest.approx(181.818181818182)),
        (3, "m2", "Two", "net_pnl", -200.0, -100.0, -200.0),
    ]
    assert board["as_of"].to_list() == [as_of] * 3


def test_prices_are_known_at_the_candle_close():
    records = pl.DataFrame(
        {
            "subject": ["BTC", "BTC", "ETH"],
            "kind": ["candle", "candle", "tick"],
            "granularity": ["1m", "1m", "1s"],
            "ts_event": [T0 - dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=59), T0 + dt.timedelta(minutes=59, seconds=30)],
            "close": [100.0, 101.0, 10.0],
            "price": [None, None, 10.0],
        },
        schema_overrides={"ts_event": pl.Datetime("us", "UTC")},
    )
    known = hourly.prices_closing_in(records, T0, T0 + HOUR)
    # The candle opening at T0 − 1 min closes at T0 (in this hour); the one opening at 59 min
    # closes at the next hour; a tick is known at its own time.
    assert known.select("subject", "ts_event", "close").rows() == [
        ("BTC", T0, 100.0),
        ("ETH", T0 + dt.timedelta(minutes=59, seconds=30), 10.0),
    ]

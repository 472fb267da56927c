"""The trading simulator: the issue's worked example, partial closes, reversals, limits, the
signal modes and replay determinism."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from decimal import Decimal

import polars as pl
import pytest

from coordinator_dagster.scoring.trading import CostModel, TradingConfig, replay
from coordinator_dagster.scoring.trading import performance
from coordinator_dagster.scoring.trading.book import POSITION_LIMIT, PORTFOLIO_LIMIT, Book
from coordinator_dagster.scoring.trading.config import PACK_CONFIG
from coordinator_dagster.scoring.trading.replay import NO_PRICE
from coordinator_dagster.scoring.trading.signals import SignalError, order_size

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
D = Decimal
BIG = TradingConfig(signal_mode="order", max_position_size=D(10_000), max_portfolio_size=D(20_000))


def feed(*rows: tuple[dt.datetime, str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {"subject": [r[1] for r in rows], "ts_event": [r[0] for r in rows], "close": [r[2] for r in rows]},
        schema={"subject": pl.String, "ts_event": pl.Datetime("us", "UTC"), "close": pl.Float64},
    )


def predictions(*rows: tuple[dt.datetime, str, str, dict | None], status: dict[int, str] | None = None) -> pl.DataFrame:
    status = status or {}
    return pl.DataFrame(
        {
            "prediction_id": [f"p{i:03d}" for i in range(len(rows))],
            "model_id": [r[1] for r in rows],
            "subject": [r[2] for r in rows],
            "round_ts": [r[0] for r in rows],
            "status": [status.get(i, "PENDING") for i in range(len(rows))],
            "output": [json.dumps(r[3]) if r[3] is not None else None for r in rows],
        },
        schema={"round_ts": pl.Datetime("us", "UTC")} | {k: pl.String for k in ("prediction_id", "model_id", "subject", "status", "output")},
    )


def row_at(frame: pl.DataFrame, model_id: str, at: dt.datetime) -> dict:
    return frame.filter(model_id=model_id, at=at).row(0, named=True)


def test_worked_example_long_marked_then_partly_closed():
    """Long 1000 @ 100, marked at 110 a day later (fee 0.1 %, spread 0.01 %, carry 10.95 %/yr):
    unrealized 100, fees 1.1, carry 0.3, net 98.6. Then short 400 @ 120 a day after that:
    realized 400 × 20 / 100 = 80, fees 1.1 + 0.44 = 1.54, long 600 left (unrealized 120), carry
    0.3 + 0.3 = 0.6, net 120 + 80 − 1.54 − 0.6 = 197.86."""
    prices = feed((T0, "BTCUSDT", 100.0), (T0 + DAY, "BTCUSDT", 110.0), (T0 + 2 * DAY, "BTCUSDT", 120.0))
    orders = predictions(
        (T0, "m1", "BTC", {"action": "buy", "amount": 1000}),
        (T0 + 2 * DAY, "m1", "BTC", {"action": "sell", "amount": 400}),
    )
    result = replay(orders, prices, PACK_CONFIG)  # the reference pack's costs, limits and pairs

    day1 = row_at(result.pnl, "m1", T0 + DAY)
    assert (day1["unrealized_pnl"], day1["total_fees"], day1["total_carry_costs"], day1["net_pnl"]) == (D("100"), D("1.1"), D("0.3"), D("98.6"))
    assert day1["realized_pnl"] == 0 and day1["open_position_count"] == 1

    day2 = row_at(result.pnl, "m1", T0 + 2 * DAY)
    assert day2["realized_pnl"] == D("80")
    assert day2["total_fees"] == D("1.54")
    assert day2["exposure"] == D("600")
    assert day2["unrealized_pnl"] == D("120")
    assert day2["total_carry_costs"] == D("0.6")
    assert day2["net_pnl"] == D("197.86")

    sell = result.fills.filter(prediction_id="p001").row(0, named=True)
    assert (sell["requested"], sell["filled"], sell["closed"], sell["fee"], sell["realized_pnl"], sell["reason"]) == (D(-400), D(-400), D(400), D("0.44"), D(80), None)


def test_reversal_closes_then_opens_the_other_way_at_the_order_price():
    book = Book(CostModel(), D(10_000), D(20_000))
    book.order("BTC", D(1000), D(100), T0)
    fill = book.order("BTC", D(-1500), D(90), T0)
    assert fill.realized_pnl == D(-100)  # 1000 × (90 − 100) / 100
    assert fill.closed == D(1000) and fill.filled == D(-1500)
    assert fill.fee == D("1.65")  # the whole 1500 pays fee and spread
    short = book.positions["BTC"]
    assert (short.size, short.entry_price) == (D(-500), D(90))
    book.mark("BTC", D(81), T0)
    assert book.totals().unrealized_pnl == D(50)  # short 500 from 90 to 81: +10 %


def test_partial_close_moves_its_share_of_carry_and_keeps_the_entry():
    book = Book(CostModel(trading_fee_pct=D(0), spread_pct=D(0)), D(10_000), D(20_000))
    book.order("BTC", D(1000), D(100), T0)
    fill = book.order("BTC", D(-250), D(104), T0 + DAY)  # carry accrued up to the order: 0.3
    assert fill.realized_pnl == D(10)
    position = book.positions["BTC"]
    assert (position.size, position.entry_price) == (D(750), D(100))
    assert book.closed_carry == D("0.075") and position.carry == D("0.225")
    assert book.totals().total_carry_costs == D("0.3")


def test_adding_to_a_position_averages_the_entry_by_units():
    """100 @ 100 (1 unit) + 100 @ 200 (0.5 unit): entry 200 / 1.5; marked at 200 the PnL is the
    sum of the pieces, 100 + 0 (an arithmetic-mean entry of 150 would say 66.67)."""
    book = Book(CostModel(), D(10_000), D(20_000))
    book.order("BTC", D(100), D(100), T0)
    book.order("BTC", D(100), D(200), T0)
    book.mark("BTC", D(200), T0)
    assert book.totals().unrealized_pnl.quantize(D("1e-20")) == D(100)


def test_position_limit_cuts_the_opening_part_only():
    book = Book(CostModel(), D(10), D(20))
    first = book.order("BTC", D(15), D(100), T0)
    assert (first.filled, first.limited_by) == (D(10), POSITION_LIMIT)
    again = book.order("BTC", D(5), D(100), T0)
    assert (again.filled, again.limited_by) == (D(0), POSITION_LIMIT)
    assert again.fee == 0
    # A full-size reversal at the limit closes 10 and opens 10 the other way.
    flip = book.order("BTC", D(-20), D(100), T0)
    assert (flip.closed, flip.filled, flip.limited_by) == (D(10), D(-20), None)
    assert book.positions["BTC"].size == D(-10)


def test_portfolio_limit_counts_every_position_of_the_model():
    book = Book(CostModel(), D(10), D(20))
    book.order("BTC", D(10), D(100), T0)
    book.order("ETH", D(-8), D(10), T0)
    third = book.order("SOL", D(5), D(1), T0)
    assert (third.filled, third.limited_by) == (D(2), PORTFOLIO_LIMIT)
    assert book.exposure() == D(20)
    # Closing is never limited, and frees room.
    assert book.order("BTC", D(-10), D(100), T0).filled == D(-10)
    assert book.order("SOL", D(8), D(1), T0).filled == D(8)


@pytest.mark.parametrize(
    ("mode", "output", "current", "expected"),
    [
        ("order", {"action": "buy", "amount": 5}, D(0), D(5)),
        ("order", {"action": "sell", "amount": 2.5}, D(3), D("-2.5")),
        ("order", {"action": "sell", "amount": 0}, D(3), D(0)),
        ("delta", {"direction": "short", "leverage": 4}, D(1), D(-4)),
        ("delta", {"direction": "long", "leverage": -1}, D(1), D(0)),
        ("target", {"signal": 3}, D(5), D(-2)),
        ("target", {"signal": -2}, D(5), D(-7)),
        ("target", {"signal": 0}, D(-4), D(4)),
    ],
)
def test_signal_modes(mode, output, current, expected):
    assert order_size(mode, output, current) == expected


@pytest.mark.parametrize(
    ("mode", "output"),
    [
        ("order", {"action": "hold", "amount": 1}),
        ("order", {"action": "buy"}),
        ("delta", {"direction": "up", "leverage": 1}),
        ("target", {"signal": "nan"}),
        ("target", {"signal": True}),
        ("target", {}),
    ],
)
def test_unreadable_signals_are_refused(mode, output):
    with pytest.raises(SignalError):
        order_size(mode, output, D(0))


def test_target_mode_replay_and_orders_that_cannot_trade():
    config = TradingConfig(signal_mode="target", max_position_size=D(10), max_portfolio_size=D(20))
    prices = feed((T0, "ETH", float("nan")), (T0 + DAY, "ETH", 0.0), (T0 + DAY, "ETH", 10.0), (T0 + 2 * DAY, "ETH", 11.0))
    orders = predictions(
        (T0, "m1", "ETH", {"signal": 4}),  # before the first price
        (T0 + DAY, "m1", "ETH", {"signal": 4}),
        (T0 + DAY, "m2", "ETH", {"wrong": 1}),
        (T0 + 2 * DAY, "m1", "ETH", {"signal": -6}),
        (T0 + 2 * DAY, "m2", "ETH", {"signal": 5}),
        status={4: "FAILED"},
    )
    result = replay(orders, prices, config)
    reasons = dict(zip(result.fills["prediction_id"], result.fills["reason"], strict=True))
    assert reasons["p000"] == NO_PRICE
    assert "'signal' must be a number" in reasons["p002"]
    assert "p004" not in reasons  # a FAILED prediction is not an order
    flip = result.fills.filter(prediction_id="p003").row(0, named=True)
    assert (flip["requested"], flip["realized_pnl"]) == (D(-10), D("0.4"))  # 4 × 10 %
    end = row_at(result.pnl, "m1", T0 + 2 * DAY)
    assert end["exposure"] == D(6) and end["open_position_count"] == 1
    m2 = row_at(result.pnl, "m2", T0 + 2 * DAY)
    assert (m2["net_pnl"], m2["open_position_count"]) == (D(0), 0)


def test_price_subjects_map_predictions_to_the_feed():
    config = TradingConfig(signal_mode="order", max_position_size=D(1000), max_portfolio_size=D(1000), price_subjects={"BTC": "BTCUSDT"})
    prices = feed((T0, "BTCUSDT", 100.0), (T0 + DAY, "BTCUSDT", 105.0))
    result = replay(predictions((T0, "m1", "BTC", {"action": "buy", "amount": 100})), prices, config)
    assert row_at(result.pnl, "m1", T0 + DAY)["unrealized_pnl"] == D(5)


def _random_session(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    import random

    rng = random.Random(seed)
    price_rows, order_rows = [], []
    prices = {"BTC": 100.0, "ETH": 10.0}
    for minute in range(240):
        at = T0 + dt.timedelta(minutes=minute)
        for subject in prices:
            prices[subject] = round(prices[subject] * (1 + rng.uniform(-0.01, 0.01)), 4)
            price_rows.append((at, subject, prices[subject]))
        if minute % 15 == 0:
            for model in ("m1", "m2", "m3"):
                order_rows.append((at, model, rng.choice(list(prices)), {"signal": round(rng.uniform(-12, 12), 3)}))
    return predictions(*order_rows), feed(*price_rows)


def test_replay_is_byte_identical_and_ignores_row_order():
    orders, prices = _random_session(7)
    config = TradingConfig()
    first = replay(orders, prices, config)
    second = replay(orders.sample(fraction=1.0, shuffle=True, seed=1), prices.sample(fraction=1.0, shuffle=True, seed=2), config)
    assert first.pnl.write_csv().encode() == second.pnl.write_csv().encode()
    assert first.fills.write_csv().encode() == second.fills.write_csv().encode()
    # The caller's decimal context changes nothing: the simulation has its own.
    with decimal.localcontext(decimal.Context(prec=6, rounding=decimal.ROUND_DOWN)):
        third = replay(orders, prices, config)
    assert first.pnl.write_csv() == third.pnl.write_csv()
    assert performance.summary(first).write_csv() == performance.summary(third).write_csv()
    assert first.pnl.height == 240 * 3 and first.pnl["net_pnl"].dtype == pl.Decimal(38, 12)
    # Every row's net PnL is its parts, exactly.
    parts = first.pnl.select((pl.col("unrealized_pnl") + pl.col("realized_pnl") - pl.col("total_fees") - pl.col("total_carry_costs") - pl.col("net_pnl")).abs().max()).item()
    assert parts <= D("4e-12")  # each column rounded to 12 places on its own


def test_performance_figures():
    from coordinator_dagster.scoring.trading.performance import hit_rate, max_drawdown, sortino_ratio

    series = [D(0), D(10), D(4), D(12), D(2), D(5)]
    assert max_drawdown(series) == D(10)  # 12 → 2
    assert max_drawdown([D(-1), D(-3)]) == D(2)
    # changes 10, −6, 8, −10, 3: mean 1, downside √((36 + 100) / 5) = √27.2
    assert sortino_ratio(series) == pytest.approx(1 / 27.2**0.5)
    assert sortino_ratio([D(1), D(2), D(3)]) is None
    assert hit_rate([D(1), D(-1), D(0), D(2)]) == 0.5
    assert hit_rate([]) is None


def test_summary_ranks_by_exact_net_pnl():
    from coordinator_dagster.scoring.trading.performance import summary

    prices = feed((T0, "BTC", 100.0), (T0 + DAY, "BTC", 110.0), (T0 + 2 * DAY, "BTC", 120.0))
    orders = predictions(
        (T0, "m1", "BTC", {"action": "buy", "amount": 1000}),
        (T0 + 2 * DAY, "m1", "BTC", {"action": "sell", "amount": 400}),
        (T0, "m2", "BTC", {"action": "sell", "amount": 1000}),
        (T0, "m3", "BTC", {"action": "sell", "amount": 1000}),
    )
    table = summary(replay(orders, prices, BIG))
    assert table["model_id"].to_list() == ["m1", "m2", "m3"]
    assert table["rank"].to_list() == [1, 2, 2]  # m2 and m3 tie exactly
    m1 = table.row(0, named=True)
    assert (m1["net_pnl"], m1["realized_pnl"], m1["trade_count"], m1["hit_rate"], m1["max_drawdown"]) == (D("197.86"), D(80), 1, 1.0, D(0))
    m2 = table.row(1, named=True)
    assert m2["net_pnl"] == D("-200") - D("1.1") - D("0.6")
    assert m2["max_drawdown"] == D("201.7") - D("1.1")  # from −1.1 on day 0 to −201.7
    assert m2["hit_rate"] is None


def test_window_by_window_equals_one_replay(tmp_path):
    """Replaying in two windows, the state saved to Parquet and read back between them, gives
    the same PnL and fills, byte for byte, as one replay over both."""
    from coordinator_dagster.scoring.trading.state import from_frames, to_frames

    orders, prices = _random_session(11)
    config = TradingConfig()
    whole = replay(orders, prices, config)

    cut = T0 + dt.timedelta(minutes=97)
    first = replay(orders.filter(pl.col("round_ts") < cut), prices.filter(pl.col("ts_event") < cut), config)
    for name, frame in to_frames(first.state).items():
        frame.write_parquet(tmp_path / f"{name}.parquet")
    saved = from_frames({name: pl.read_parquet(tmp_path / f"{name}.parquet") for name in ("books", "positions", "prices")}, config)
    second = replay(orders.filter(pl.col("round_ts") >= cut), prices.filter(pl.col("ts_event") >= cut), config, start=saved)

    assert pl.concat([first.pnl, second.pnl]).write_csv() == whole.pnl.write_csv()
    assert pl.concat([first.fills, second.fills]).write_csv() == whole.fills.write_csv()
    assert to_frames(second.state)["positions"].equals(to_frames(whole.state)["positions"])
    assert saved.as_of == cut - dt.timedelta(minutes=1)
    # The start state is not changed by the replay that used it, and windows may not overlap.
    assert to_frames(saved)["books"].equals(to_frames(first.state)["books"])
    with pytest.raises(ValueError, match="not after"):
        replay(orders, prices, config, start=saved)


@pytest.mark.parametrize("seed", range(5))
def test_limits_hold_and_closing_is_never_cut_over_random_orders(seed):
    import random

    rng = random.Random(seed)
    book = Book(CostModel(), D(10), D(25))
    subjects = ["BTC", "ETH", "SOL"]
    fees = D(0)
    for step in range(300):
        subject = rng.choice(subjects)
        before = book.size_of(subject)
        requested = D(str(round(rng.uniform(-15, 15), 2)))
        fill = book.order(subject, requested, D(str(round(rng.uniform(50, 150), 2))), T0 + dt.timedelta(minutes=step))
        fees += fill.fee
        assert all(abs(p.size) <= D(10) for p in book.positions.values())
        assert book.exposure() <= D(25)
        if before and requested and (before > 0) != (requested > 0):
            assert fill.closed == min(abs(requested), abs(before))  # reducing risk is never cut
        assert abs(fill.filled) <= abs(requested)
        assert book.size_of(subject) == before + fill.filled
    assert book.totals().total_fees == fees

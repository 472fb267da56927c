"""The live listener with the unmodified ccxt.pro binance client against a loopback WebSocket
server in Binance's kline-stream format (tests/ws_exchange_server.py), with gaps filled from the
loopback REST exchange (tests/exchange_server.py): normal flow, duplicates and out-of-order
messages, a connection dropped mid-candle, a flood, malformed messages."""

import datetime as dt
import logging
import threading
import time

import polars as pl
import pytest

from coordinator_dagster.feeds.streaming.listener import running
from coordinator_dagster.feeds.streaming.sources import CcxtStream
from coordinator_dagster.feeds.ccxt import CcxtSource
from tests.exchange_server import ExchangeServer
from tests.stream_support import UTC, fast_config, make_listener, materializations, ms, stored, wait_until
from tests.ws_exchange_server import WsExchangeServer

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

T0 = ms(dt.datetime(2026, 11, 2, 10, 0, tzinfo=UTC))
MINUTE = 60_000
SYMBOLS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture(scope="module")
def rest():
    with ExchangeServer() as server:
        yield server


@pytest.fixture
def ws(rest):
    rest.requests.clear()
    with WsExchangeServer(rest) as server:
        yield server


@pytest.fixture
def listen(rest, ws, tmp_path):
    """Start a listener (stream + REST gap fill) and wait for its subscriptions."""

    def start(**kwargs):
        feed = CcxtSource(base_url=rest.base_url, backoff_seconds=0.01, timeout_seconds=2.0)
        stream = CcxtStream(feed, ws_url=ws.ws_url, idle_timeout=20.0)
        return make_listener(tmp_path / "home", stream, feed, **kwargs)

    return start


def minute(i: int) -> int:
    return T0 + i * MINUTE


def final_frame(rest: ExchangeServer, first: int, last: int) -> pl.DataFrame:
    """What a complete stream should leave in the lake: REST's candles for minutes first..last."""
    rows = []
    for symbol in SYMBOLS:
        for r in rest.candles(symbol, minute(first), minute(last + 1)):
            rows.append({"subject": symbol.split("/")[0], "ts": r[0], "open": float(r[1]), "high": float(r[2]), "low": float(r[3]), "close": float(r[4]), "volume": float(r[5])})
    return pl.DataFrame(rows).sort("subject", "ts")


def lake_values(lake) -> pl.DataFrame:
    frame = stored(lake)
    return frame.select(
        "subject", (pl.col("ts_event").dt.epoch("ms")).alias("ts"), "open", "high", "low", "close", "volume"
    ).sort("subject", "ts")


def candles(ws: WsExchangeServer, i: int, *, partial: bool = True, final: bool = True) -> list[dict]:
    messages = []
    for symbol in SYMBOLS:
        if partial:
            messages.append(ws.kline(symbol, minute(i), closed=False, partial=True))
        if final:
            messages.append(ws.kline(symbol, minute(i), closed=True))
    return messages


def heartbeat(ws: WsExchangeServer, i: int, *, final: bool = False) -> None:
    """Another update of the forming candle i a moment later, as Binance sends every 2 s: ccxt
    announces a symbol's updates on its next message, so the last of a burst needs one."""
    time.sleep(0.1)
    ws.send(candles(ws, i, partial=not final, final=final))


def test_closed_candles_reach_the_lake_with_dagster_events_and_the_forming_one_does_not(listen, ws, rest, caplog):
    caplog.set_level(logging.INFO, logger="coordinator.feeds.listen")
    listener, lake, instance = listen()
    with running(listener):
        ws.wait_subscribed(2)
        ws.send([m for i in range(5) for m in candles(ws, i)] + candles(ws, 5, final=False))
        heartbeat(ws, 5)
        wait_until(lambda: lake_values(lake).height == 10, what="5 candles × 2 subjects")
        time.sleep(0.2)  # nothing more may arrive: minute 5 is still forming
        assert lake_values(lake).equals(final_frame(rest, 0, 4))
    frame = stored(lake)
    assert set(frame["source"]) == {"binance"} and set(frame["kind"]) == {"candle"} and set(frame["granularity"]) == {"1m"}
    assert frame["price"].to_list() == frame["close"].to_list()
    events = materializations(instance)
    assert events and {e.partition for e in events} == {"2026-11-02-10:00"}
    newest = events[0]  # newest first
    assert newest.metadata["records"].value == 10
    assert newest.metadata["source"].value == "binance"
    assert rest.requests.count("/api/v3/klines") == 0  # no gap: nothing fetched through REST
    assert "connected: binance WebSocket" in caplog.text


def test_duplicate_and_out_of_order_messages_are_stored_once_with_final_values(listen, ws, rest):
    listener, lake, _ = listen()
    with running(listener):
        ws.wait_subscribed(2)
        ws.send(
            candles(ws, 0) + candles(ws, 0, partial=False)  # minute 0 twice
            + candles(ws, 1)
            + candles(ws, 3)  # minute 3 before minute 2: minute 1 closes, 3 is forming
            + candles(ws, 2, partial=False)  # late: older than the forming minute, never seen → stored
            + candles(ws, 2, partial=False)  # and repeated: dropped
        )
        heartbeat(ws, 3, final=True)
        # A stale update of a minute already closed, delivered again later: ignored. (Sent in
        # the same burst as the final update, ccxt would apply it to its cached row in place
        # before the listener reads it; real streams do not resend old candles.)
        ws.send(candles(ws, 1, final=False) + candles(ws, 4, final=False))
        heartbeat(ws, 4)
        wait_until(lambda: lake_values(lake).height == 8, what="minutes 0-3")
        wait_until(lambda: listener.stats.duplicates >= 2, what="minutes 0 and 2 counted as duplicates")
    got, want = lake_values(lake), final_frame(rest, 0, 3)
    assert got.equals(want), (got.rows(), want.rows())


def test_a_connection_dropped_mid_candle_is_refilled_through_rest(listen, ws, rest, caplog):
    caplog.set_level(logging.INFO, logger="coordinator.feeds.listen")
    listener, lake, instance = listen()
    with running(listener):
        ws.wait_subscribed(2)
        ws.send([m for i in range(3) for m in candles(ws, i)] + candles(ws, 3, final=False))  # minute 3 half done
        heartbeat(ws, 3)
        wait_until(lambda: lake_values(lake).height == 6, what="minutes 0-2")
        ws.drop()
        ws.wait_subscribed(4)  # the listener is back, both symbols subscribed again
        ws.send(candles(ws, 6, final=False))  # the stream resumes at minute 6
        wait_until(lambda: lake_values(lake).height == 12, what="minutes 3-5 from REST")
        ws.send(candles(ws, 6, partial=False) + candles(ws, 7, final=False))
        heartbeat(ws, 7)
        wait_until(lambda: lake_values(lake).height == 14, what="minute 6 from the stream")
    # Minute 3's partial update never reached the lake: REST's final candle did.
    assert lake_values(lake).equals(final_frame(rest, 0, 6))
    assert rest.requests.count("/api/v3/klines") >= 1
    assert "disconnected:" in caplog.text and "gap filled: 2026-11-02 10:03:00 → 2026-11-02 10:06:00" in caplog.text
    assert listener.stats.connections == 2
    assert any(e.description and e.description.startswith("gap fill") for e in materializations(instance))


def test_a_flood_keeps_memory_bounded_never_blocks_and_loses_nothing(listen, ws, rest, caplog):
    caplog.set_level(logging.INFO, logger="coordinator.feeds.listen")
    minutes = 400
    # A disk that writes nothing until the flood has been read, then needs 50 ms per write, and
    # room for 20 waiting records: the buffer must overflow.
    gate = threading.Event()
    listener, lake, _ = listen(config=fast_config(capacity=20), slow=0.05, gate=gate)
    with running(listener):
        ws.wait_subscribed(2)
        flood = []
        for i in range(minutes):
            for symbol in SYMBOLS:
                flood += [ws.kline(symbol, minute(i), closed=False, partial=True)] * 3 + [ws.kline(symbol, minute(i), closed=True)]
        flood += candles(ws, minutes, final=False)
        ws.send(flood)
        heartbeat(ws, minutes)
        # The receiving side reads the whole flood while the writer cannot write at all.
        wait_until(lambda: listener.stats.closed + listener.stats.duplicates >= 2 * minutes * 0.99, timeout=120, what="the flood to be read")
        assert listener.stats.written == 0
        gate.set()
        wait_until(lambda: lake_values(lake).height == 2 * minutes, timeout=120, what="every minute in the lake")
    assert lake_values(lake).equals(final_frame(rest, 0, minutes - 1))
    assert listener.buffer.stats.high_water <= 20
    assert listener.stats.dropped > 0  # the overflow happened, and REST brought the dropped minutes back
    assert "degraded: writer behind" in caplog.text and "recovered:" in caplog.text


def test_malformed_messages_are_logged_skipped_and_never_written(listen, ws, rest, caplog):
    caplog.set_level(logging.INFO, logger="coordinator.feeds.listen")
    listener, lake, _ = listen()
    bad_close = ws.kline("BTC/USDT", minute(1), closed=False)
    bad_close["k"]["c"] = "abc"
    inverted = ws.kline("ETH/USDT", minute(1), closed=False)
    inverted["k"]["h"], inverted["k"]["l"] = "1.00", "99999.00"
    no_kline = {"e": "kline", "E": 1, "s": "BTCUSDT"}
    with running(listener):
        ws.wait_subscribed(2)
        ws.send(candles(ws, 0) + candles(ws, 1, final=False) + ["hello", bad_close, inverted, no_kline] + candles(ws, 2, final=False))
        heartbeat(ws, 2)
        wait_until(lambda: lake_values(lake).height == 4, what="minutes 0-1")
        # A frame that looks like JSON but is not: ccxt stops reading that socket, so the
        # listener reconnects at once and fills what it missed through REST.
        ws.send(["{not json"] + candles(ws, 3))
        ws.wait_subscribed(4)
        ws.send(candles(ws, 4, final=False))
        wait_until(lambda: lake_values(lake).height == 8, what="minutes 2-3 from REST")
        time.sleep(0.3)
    # Minute 1's last updates were malformed: its candle came from REST, never from them.
    assert lake_values(lake).equals(final_frame(rest, 0, 3))
    frame = stored(lake)
    assert frame.filter(pl.col("high") < pl.col("low")).is_empty()
    assert listener.stats.malformed == 5
    assert caplog.text.count("malformed message skipped") == 5
    assert "is not a JSON object: 'hello'" in caplog.text
    assert "cannot decode" in caplog.text and "without a 'k' object" in caplog.text and "low/high" in caplog.text
    assert "disconnected: ccxt stopped reading" in caplog.text

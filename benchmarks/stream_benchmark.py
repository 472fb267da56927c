"""Live listener benchmark: message-to-lake latency, sustained messages per second, and data
loss across forced reconnects, on this machine.

The real listener (`coordinator_dagster.feeds.streaming`) with the unmodified ccxt.pro binance client
reads a loopback WebSocket server in Binance's kline format (tests/ws_exchange_server.py) and
fills gaps from the loopback REST exchange (tests/exchange_server.py); writes go to a temporary
lake and every write is reported to a temporary Dagster instance (SQLite, as `dagster dev`'s
default), as in production. Both servers run in this process (threads), so they compete with
the listener for the interpreter: the figures are conservative.

1. Latency at a fixed rate (default 100 messages/s): a replay in which every message is the
   final kline of a new minute for one of two symbols, so every message closes a candle. The
   latency of a candle is the time from the send of the message that closes it (the next
   minute's first) to the moment its partition file is in place (os.replace done).
2. Ceiling: the same replay at higher rates and unpaced; sustained = messages / time until the
   last closed candle is written.
3. Reconnects: `--reconnects` times, stream a few minutes, cut the connection mid-candle,
   resume two minutes later; at the end every minute must be in the lake with REST's values.

    .venv/bin/python benchmarks/stream_benchmark.py [--rate 100] [--seconds 30] [--reconnects 100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
import polars as pl  # noqa: E402

from coordinator_dagster.cli.listener_setup import dagster_reporter  # noqa: E402
from coordinator_dagster.lake.store import Lake  # noqa: E402
from coordinator_dagster.feeds.streaming.listener import Listener, ListenerConfig, running  # noqa: E402
from coordinator_dagster.feeds.streaming.sources import CcxtStream  # noqa: E402
from coordinator_dagster.feeds.streaming.writer import LakeWriter  # noqa: E402
from coordinator_dagster.feeds.ccxt import CcxtSource  # noqa: E402
from tests.exchange_server import ExchangeServer  # noqa: E402
from tests.ws_exchange_server import WsExchangeServer  # noqa: E402

MINUTE = 60_000
SYMBOLS = ("BTC/USDT", "ETH/USDT")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Run:
    """One listener on a fresh lake and Dagster instance, recording when each candle landed."""

    def __init__(self, rest: ExchangeServer, ws: WsExchangeServer, workdir: Path, *, capacity: int = 10_000):
        self.home = Path(tempfile.mkdtemp(dir=workdir))
        dagster_home = self.home / "dagster"
        dagster_home.mkdir()
        (dagster_home / "dagster.yaml").write_text("")
        self.instance = dg.DagsterInstance.from_config(str(dagster_home))
        self.lake = Lake(self.home)
        feed = CcxtSource(base_url=rest.base_url, backoff_seconds=0.05, timeout_seconds=5.0)
        stream = CcxtStream(feed, ws_url=ws.ws_url, idle_timeout=30.0)
        writer = LakeWriter(self.lake, source="binance", kind="candle", granularity="1m", report=dagster_reporter(self.instance))
        config = ListenerConfig(
            capacity=capacity, backoff_initial=0.05, backoff_max=0.5, initial_backfill=dt.timedelta(0), gap_settle_seconds=0.0, flush_interval=0.05
        )
        self.written: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        self.listener = Listener(stream, writer, feed, config, on_written=self._on_written)

    def _on_written(self, items, results) -> None:
        done = max(r.written_at for r in results) if results else time.time()
        with self._lock:
            for p in items:
                self.written.setdefault(p.record.key, done)

    def count(self) -> int:
        with self._lock:
            return len(self.written)


def replay(ws: WsExchangeServer, t0: int, count: int) -> tuple[list[dict], list[tuple[str, int]]]:
    """`count` messages alternating symbols, each the final kline of the symbol's next minute;
    closes[i] is the candle message i closes (None for each symbol's first)."""
    messages, closes = [], []
    for i in range(count):
        symbol = SYMBOLS[i % 2]
        minute = i // 2
        messages.append(ws.kline(symbol, t0 + minute * MINUTE, closed=True))
        closes.append((symbol.split("/")[0], t0 + (minute - 1) * MINUTE) if minute else None)
    return messages, closes


def latency_run(rest, ws, workdir, t0: int, rate: float | None, count: int) -> dict:
    run = Run(rest, ws, workdir)
    subscribed = ws.subscribed()
    with running(run.listener):
        ws.wait_subscribed(subscribed + 2, timeout=60)
        messages, closes = replay(ws, t0, count)
        started = time.time()
        sent = ws.send_paced(messages, rate)
        # ccxt announces a symbol's update on its next message: one more per symbol.
        ws.send_paced(replay(ws, t0 + (count // 2) * MINUTE, 2)[0], None)
        expected = sum(1 for c in closes if c is not None) + 2
        deadline = time.time() + 120
        while run.count() < expected and time.time() < deadline:
            time.sleep(0.01)
        finished = max(run.written.values()) if run.written else time.time()
        run.instance.dispose()
    latencies = [(run.written[key] - sent[i]) * 1000 for i, key in enumerate(closes) if key is not None and key in run.written]
    return {
        "rate": rate,
        "messages": count,
        "written": run.count(),
        "missing": expected - run.count(),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "send_s": sent[-1] - started,
        "sustained_msgs_s": count / (finished - started),
        "writes": run.listener.stats.writes,
        "events": run.listener.writer.events_reported,
        "dropped": run.listener.stats.dropped,
    }


def reconnect_run(rest, ws, workdir, t0: int, reconnects: int) -> dict:
    run = Run(rest, ws, workdir)
    minute = 0
    started = time.time()
    subscribed = ws.subscribed()
    with running(run.listener):
        for cycle in range(reconnects + 1):
            subscribed += 2
            ws.wait_subscribed(subscribed, timeout=60)
            messages = []
            for _ in range(3):  # three minutes, each with a partial and a final update
                for symbol in SYMBOLS:
                    messages.append(ws.kline(symbol, t0 + minute * MINUTE, closed=False, partial=True))
                    messages.append(ws.kline(symbol, t0 + minute * MINUTE, closed=True))
                minute += 1
            messages += [ws.kline(s, t0 + minute * MINUTE, closed=False, partial=True) for s in SYMBOLS]  # mid-candle
            ws.send_paced(messages, None)
            time.sleep(0.05)
            ws.send_paced([ws.kline(s, t0 + minute * MINUTE, closed=False, partial=True) for s in SYMBOLS], None)
            if cycle < reconnects:
                time.sleep(0.05)
                ws.drop()
                minute += 2  # the stream resumes two minutes later: REST must fill the hole
        expected_rows = 2 * minute  # every minute before the last forming one
        deadline = time.time() + 120
        frame = pl.DataFrame()
        while time.time() < deadline:
            frame = run.lake.read_all("feed_records")
            if frame.height >= expected_rows:
                break
            time.sleep(0.2)
        stats = run.listener.stats
        run.instance.dispose()
    elapsed = time.time() - started
    want = {
        (symbol.split("/")[0], r[0], float(r[4]))
        for symbol in SYMBOLS
        for r in rest.candles(symbol, t0, t0 + minute * MINUTE)
    }
    got = {(s, int(t.timestamp() * 1000), c) for s, t, c in frame.select("subject", "ts_event", "close").iter_rows()}
    return {
        "reconnects": reconnects,
        "connections": stats.connections,
        "minutes": minute,
        "expected_rows": expected_rows,
        "rows": frame.height,
        "missing": len(want - got),
        "wrong_or_extra": len(got - want),
        "gap_fills": stats.gap_fills,
        "gap_records": stats.gap_records,
        "elapsed_s": elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second of the latency run (default 100)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the latency run (default 30)")
    parser.add_argument("--ceiling", type=float, nargs="*", default=[500.0, 2000.0, 0.0], help="higher rates to try, 0 = unpaced (default 500 2000 0)")
    parser.add_argument("--reconnects", type=int, default=100, help="forced reconnects (default 100)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("coordinator.feeds.listen").setLevel(logging.INFO if os.environ.get("STREAM_BENCH_LOG") else logging.ERROR)
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    t0 = int(dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)  # the past: gaps are due at once
    with tempfile.TemporaryDirectory() as workdir, ExchangeServer() as rest, WsExchangeServer(rest) as ws:
        rows = []
        rates = [args.rate, *args.ceiling]
        for i, rate in enumerate(rates):
            count = int(args.rate * args.seconds) if i == 0 else (6000 if rate == 0 else int(rate * 10))
            count -= count % 2
            result = latency_run(rest, ws, Path(workdir), t0 + i * 30 * 86_400_000, rate or None, count)
            rows.append(result)
            label = f"{rate:g} msg/s" if rate else "unpaced"
            print(
                f"latency {label:>11}: {result['messages']} messages, {result['written']} candles written ({result['missing']} missing), "
                f"message→lake p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms; "
                f"sustained {result['sustained_msgs_s']:.0f} msg/s; {result['writes']} writes, {result['events']} Dagster events, {result['dropped']} dropped"
            )
        first = rows[0]
        verdict = "meets" if first["p99_ms"] < 200 else "MISSES"
        print(f"target p99 < 200 ms at {args.rate:g} msg/s: {verdict} ({first['p99_ms']:.1f} ms)")
        result = reconnect_run(rest, ws, Path(workdir), t0 + 300 * 86_400_000, args.reconnects)
        print(
            f"reconnects: {result['reconnects']} forced reconnects ({result['connections']} connections) over {result['minutes']} minutes × 2 subjects in {result['elapsed_s']:.1f} s; "
            f"{result['rows']}/{result['expected_rows']} rows, {result['missing']} missing, {result['wrong_or_extra']} wrong or extra; "
            f"{result['gap_fills']} gap fills brought {result['gap_records']} records"
        )
        print(f"target no data loss across {args.reconnects} reconnects: {'meets' if result['missing'] == 0 and result['wrong_or_extra'] == 0 else 'MISSES'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Two `coordinator api` processes over the same lake, as two replicas behind a load balancer:
after a write to the lake (a run replacing the leaderboard or an hour of predictions, or a
checkpoint confirmed through the other replica) both answer the same. Each replica's caches are
keyed by the identity of the lake's files (api/cache.py, api/prediction_pages.py), never by a
timer or by what that process itself wrote, so no replica can keep serving what another changed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from api.solana import b58encode
from tests.api_fixtures import CHECKPOINT_KEYS, leaderboard_frame, seed_lake
from tests.process_support import free_port, wait_for

pytestmark = pytest.mark.process  # every test here starts a server or a subprocess

ROOT = Path(__file__).resolve().parents[1]
PENDING = f"CKP-{CHECKPOINT_KEYS[1]}"  # PENDING in the seed
READS = ["/reports/leaderboard", "/v1/reports/predictions?limit=50", "/reports/checkpoints", f"/reports/checkpoints/{PENDING}"]


@contextlib.contextmanager
def replica(home: Path, log: Path) -> Iterator[str]:
    """`coordinator api` on a free loopback port over `home`, as an operator starts one."""
    port = free_port()
    env = {**os.environ, "COORDINATOR_HOME": str(home)}
    env.pop("API_KEY", None)
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "coordinator_dagster.cli.main", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return process.poll() is not None

    try:
        assert wait_for(healthy, 180) and process.poll() is None, log.read_text()
        yield base
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(client: httpx.Client, base: str) -> list:
    return [client.get(base + path).json() for path in READS]


def test_two_replicas_answer_the_same_after_a_lake_write(tmp_path):
    seeded = seed_lake(tmp_path / "home")
    with replica(seeded.lake.home, tmp_path / "a.log") as a, replica(seeded.lake.home, tmp_path / "b.log") as b, httpx.Client(timeout=30) as client:
        before = answers(client, a)
        assert before == answers(client, b)
        for _ in range(3):  # both caches warm
            answers(client, a), answers(client, b)

        # A run replaces the leaderboard and the newest hour of predictions (new files, renamed in).
        seeded.lake.write("leaderboard", leaderboard_frame(version=7))
        newest = seeded.window_keys[-1]
        hour = seeded.lake.read("predictions", newest).with_columns(pl.lit(0.123).alias("value"))
        seeded.lake.write("predictions", hour, newest)
        # The leaderboard's file identity is checked on every request; an hour's at most every
        # 20 ms (api/cache.py IDENTITY_TTL): wait for it, never for a duration.
        assert wait_for(lambda: answers(client, a) == answers(client, b) != before, 30)
        after = answers(client, a)
        assert [row["prediction_count"] for row in after[0]] == [107, 207, 307]
        assert after[1]["items"][0]["value"] == 0.123  # newest first: a row of the rewritten hour

        # A checkpoint confirmed through one replica is what the other answers at once.
        signature = b58encode(bytes(range(1, 65)))
        confirmed = client.post(f"{a}/reports/checkpoints/{PENDING}/confirm", json={"tx_hash": signature})
        assert confirmed.status_code == 200, confirmed.text
        seen = client.get(f"{b}/reports/checkpoints/{PENDING}").json()
        assert (seen["status"], seen["tx_hash"]) == ("SUBMITTED", signature)
        # The same confirmation through the second replica is the idempotent repeat, not a second event.
        again = client.post(f"{b}/reports/checkpoints/{PENDING}/confirm", json={"tx_hash": signature})
        assert again.status_code == 200 and len(again.json()["history"]) == 1
        assert answers(client, a) == answers(client, b)

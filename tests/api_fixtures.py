"""Helpers for the report API tests: a seeded lake and a real uvicorn server in a thread.

Imported explicitly by `tests/test_api.py` (and usable from a benchmark script), so nothing here
is a pytest fixture by itself. The lake is seeded only through `Lake.write`, `Lake.write_windows`
and `Lake.append_event`, with frames conformed to the table schemas, exactly as the assets do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import uvicorn
from fastapi import FastAPI, Request

from coordinator_dagster.lake import schemas
from coordinator_dagster.scoring.emission import default_build_emission
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT, window_keys_between

UTC = dt.timezone.utc
SEED_START = dt.datetime(2026, 11, 20, tzinfo=UTC)
WINDOWS = ("score_recent", "score_steady", "score_anchor")
SCOPES = (("btc-60s", "BTC"), ("eth-60s", "ETH"))
MODELS = (
    # model_id, name, cruncher, cruncher_index
    ("m-alpha", "Alpha", "alice", 3),
    ("m-beta", "Beta", "bob", 7),
    ("m-gamma", "Gamma", "carol", 11),
)
CHECKPOINT_KEYS = ("2026-11-08", "2026-11-15")  # weekly periods start on Sundays
SUBMITTED_TX = "5xTxHashOfTheSubmittedCheckpoint"


@dataclass(frozen=True)
class SeededLake:
    lake: Lake
    predictions: pl.DataFrame  # as the API should show them: status derived, score_value joined
    raw_predictions: pl.DataFrame  # as written
    scores: pl.DataFrame
    window_keys: list[str]
    start: dt.datetime
    end: dt.datetime  # exclusive: the hour after the last round


def build_predictions(start: dt.datetime, hours: int, every_minutes: int) -> pl.DataFrame:
    """Every model's answer to every round of every scope; m-gamma is sometimes ABSENT or FAILED."""
    rows = []
    for step in range(hours * 60 // every_minutes):
        round_ts = start + dt.timedelta(minutes=step * every_minutes)
        for scope_key, subject in SCOPES:
            input_id = f"{scope_key}@{round_ts:%Y-%m-%dT%H:%M:%SZ}"
            for m, (model_id, *_) in enumerate(MODELS):
                status, value, reason = "PENDING", round(math.sin(step + m) * 0.01, 6), None
                if model_id == "m-gamma" and step % 5 == 1:
                    status, value, reason = "ABSENT", None, "no answer within 5 s"
                elif model_id == "m-gamma" and step % 5 == 3:
                    status, value, reason = "FAILED", None, "output is not a finite number"
                rows.append(
                    {
                        "prediction_id": f"{input_id}/{model_id}",
                        "input_id": input_id,
                        "scope_key": scope_key,
                        "subject": subject,
                        "model_id": model_id,
                        "round_ts": round_ts,
                        "resolvable_at": round_ts + dt.timedelta(seconds=60),
                        "status": status,
                        "value": value,
                        "output": json.dumps({"value": value}) if value is not None else None,
                        "failed_reason": reason,
                        "latency_ms": 3.0,
                        "predicted_at": round_ts + dt.timedelta(seconds=1),
                    }
                )
    return pl.DataFrame(rows, schema=schemas.PREDICTIONS)


def build_scores(predictions: pl.DataFrame, scored_before: dt.datetime) -> pl.DataFrame:
    """A score for every PENDING prediction of a round before `scored_before`."""
    todo = predictions.filter((pl.col("status") == "PENDING") & (pl.col("round_ts") < scored_before))
    return todo.select(
        "prediction_id",
        "input_id",
        "scope_key",
        "subject",
        "model_id",
        "round_ts",
        "resolvable_at",
        pl.col("value").alias("prediction_value"),
        pl.lit(100.0).alias("entry_price"),
        pl.lit(101.0).alias("resolved_price"),
        pl.lit(0.01).alias("profit"),
        pl.lit(True).alias("direction_up"),
        (pl.col("value") * 100).round(6).alias("value"),
        pl.lit(True).alias("success"),
        pl.lit(None, dtype=pl.String).alias("failed_reason"),
        pl.lit("{}").alias("result"),
        pl.lit("v1").alias("scoring_version"),
    )


def leaderboard_frame(version: int = 0) -> pl.DataFrame:
    """Three ranked models; `version` shifts every value so rewrites are visible but stay ranked."""
    as_of = SEED_START + dt.timedelta(days=1)
    rows = []
    for rank, (model_id, name, cruncher, _) in enumerate(MODELS, start=1):
        recent = 0.5 - rank * 0.1 + version * 0.001
        rows.append(
            {
                "rank": rank,
                "model_id": model_id,
                "model_name": name,
                "cruncher": cruncher,
                "ranking_key": "score_recent",
                "ranking_value": recent,
                "is_ensemble": False,
                "score_recent": recent,
                "score_steady": recent / 2,
                "score_anchor": None if rank == 3 else recent / 4,
                "prediction_count": 100 * rank + version,
                "as_of": as_of,
            }
        )
    # A virtual ensemble model: unranked, hidden from the leaderboard unless asked for.
    rows.append({**rows[0], "rank": None, "model_id": "__ensemble_main__", "model_name": None, "cruncher": None, "is_ensemble": True})
    return pl.DataFrame(rows)


def checkpoint_frame(period_key: str, model_count: int) -> pl.DataFrame:
    period_start = dt.datetime.strptime(period_key, "%Y-%m-%d").replace(tzinfo=UTC)
    entries = [
        {"rank": rank, "model_id": model_id, "cruncher": cruncher, "cruncher_index": index, "ranking_value": 1.0 / rank}
        for rank, (model_id, _, cruncher, index) in enumerate(MODELS[:model_count], start=1)
    ]
    emission = default_build_emission(entries, "CrunchPubkey1111", "ComputeProvider1", None)
    return pl.DataFrame(
        {
            "checkpoint_id": [f"CKP-{period_key}"],
            "period_start": [period_start],
            "period_end": [period_start + dt.timedelta(days=7)],
            "status": ["PENDING"],
            "ranking_key": ["value"],
            "model_count": [len(entries)],
            "entries": [json.dumps(entries, sort_keys=True)],
            "emission": [json.dumps(emission.model_dump(mode="json"), sort_keys=True)],
            "merkle_root": [None],
        }
    )


def expected_predictions(predictions: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """What the API must answer, computed with polars rather than the SQL under test."""
    joined = predictions.join(scores.select("prediction_id", pl.col("value").alias("score_value")), on="prediction_id", how="left")
    return joined.with_columns(
        pl.when((pl.col("status") == "PENDING") & pl.col("score_value").is_not_null())
        .then(pl.lit("SCORED"))
        .otherwise(pl.col("status"))
        .alias("status")
    ).sort(["round_ts", "scope_key", "model_id"], descending=[True, False, False])


def seed_lake(home: Path, *, hours: int = 3, every_minutes: int = 15, start: dt.datetime = SEED_START) -> SeededLake:
    """A lake with `hours` of predictions (the last hour unscored), a leaderboard,
    two checkpoints and a SUBMITTED event for the older one."""
    lake = Lake(home, window_names=WINDOWS)
    end = start + dt.timedelta(hours=hours)
    keys = window_keys_between(start, end)
    predictions = build_predictions(start, hours, every_minutes)
    scores = build_scores(predictions, scored_before=end - dt.timedelta(hours=1))
    lake.write_windows("predictions", predictions, "round_ts", keys)
    lake.write_windows("scores", scores, "round_ts", keys)
    lake.write("leaderboard", leaderboard_frame())
    for key, count in zip(CHECKPOINT_KEYS, (3, 2), strict=True):
        lake.write("checkpoints", checkpoint_frame(key, count), key)
    lake.append_event(
        "checkpoint_events",
        pl.DataFrame(
            {
                "checkpoint_id": [f"CKP-{CHECKPOINT_KEYS[0]}"],
                "event_at": [start],
                "status": ["SUBMITTED"],
                "tx_hash": [SUBMITTED_TX],
                "caller": ["operator"],
            }
        ),
    )
    return SeededLake(lake, expected_predictions(predictions, scores), predictions, scores, keys, start, end)


def rewrite_window(seeded: SeededLake, key: str) -> None:
    """Replace one hour of predictions and scores with the same rows, as a re-run does."""
    for name, frame in (("predictions", seeded.raw_predictions), ("scores", seeded.scores)):
        seeded.lake.write(name, frame.filter(pl.col("round_ts").dt.truncate("1h").dt.strftime(WINDOW_KEY_FORMAT) == key), key)


@contextlib.contextmanager
def serve(app: FastAPI, timeout: float = 60.0, health_path: str = "/healthz") -> Iterator[str]:
    """Run `app` under a real uvicorn server on 127.0.0.1 in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Binding port 0 here and handing the socket to uvicorn avoids racing for a "free" port.
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn-test")
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{base_url}{health_path}", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"uvicorn did not answer {health_path} at {base_url} within {timeout} s")
            time.sleep(0.05)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def seed_extras(lake: Lake, start: dt.datetime = SEED_START, hours: int = 3) -> None:
    """Feed records, the model registry, snapshots (with diversity metrics) and an ensemble's
    leaderboard history, for the report routes beyond predictions and checkpoints."""
    keys = window_keys_between(start, start + dt.timedelta(hours=hours))
    feed = [
        {
            "source": "binance", "subject": subject, "kind": "candle", "granularity": "1m",
            "ts_event": start + dt.timedelta(minutes=m), "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0, "price": None,
        }
        for subject in ("BTC", "ETH")
        for m in range(hours * 60 if subject == "BTC" else 60)
    ]
    lake.write_windows("feed_records", pl.DataFrame(feed, schema=schemas.FEED_RECORDS), "ts_event", keys)
    lake.write(
        "models",
        pl.DataFrame(
            [
                {"model_id": model_id, "name": name, "cruncher": cruncher, "cruncher_index": index, "entrypoint": f"models/{model_id}.py", "joined_at": start, "active": model_id != "m-gamma"}
                for model_id, name, cruncher, index in MODELS
            ],
            schema=schemas.MODELS,
        ),
    )
    snapshots = [
        {
            "model_id": model_id, "period_start": start + dt.timedelta(hours=h), "period_end": start + dt.timedelta(hours=h + 1),
            "prediction_count": 8, "scored_count": 6, "failed_count": 2, "value": 0.1 * (m + 1),
            "result_summary": json.dumps({"value": 0.1 * (m + 1), "model_correlation": (0.95, 0.6, 0.1)[m], "ic": float("nan") if h == 0 else 0.2}),
            "scoring_version": "v1",
        }
        for h in range(hours)
        for m, (model_id, *_) in enumerate(MODELS)
    ]
    lake.write_windows("snapshots", pl.DataFrame(snapshots, schema=schemas.SNAPSHOTS), "period_start", keys)
    board = leaderboard_frame()
    for h, key in enumerate(keys):
        lake.write("leaderboard_history", board.with_columns(pl.lit(start + dt.timedelta(hours=h, minutes=30)).cast(schemas.UTC_TS).alias("as_of")), key)


def new_dagster_state() -> dict:
    return {"backfills": [], "queries": [], "new_status": "REQUESTED"}


def fake_dagster(state: dict) -> FastAPI:
    """A stand-in for the Dagster webserver's GraphQL endpoint: every query is validated against
    dagster-graphql's real schema; backfills live in `state` (see `new_dagster_state`)."""
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    schema = create_schema().graphql_schema
    app = FastAPI()

    @app.post("/graphql")
    async def graphql(request: Request) -> dict:
        body = await request.json()
        errors = validate(schema, parse(body["query"]))
        if errors:
            return {"errors": [{"message": str(e)} for e in errors]}
        variables = body.get("variables") or {}
        state["queries"].append(body["query"])
        if "launchPartitionBackfill" in body["query"]:
            params = variables["params"]
            backfill = {
                "id": f"bf{len(state['backfills']) + 1}", "status": state["new_status"], "numPartitions": len(params["partitionNames"]),
                "timestamp": 1_764_000_000.0, "endTimestamp": None, "title": params["title"], "partitionNames": params["partitionNames"],
                "assetSelection": params["assetSelection"], "partitionStatusCounts": [{"runStatus": "QUEUED", "count": 1}],
            }
            state["backfills"].insert(0, backfill)
            return {"data": {"launchPartitionBackfill": {"__typename": "LaunchBackfillSuccess", "backfillId": backfill["id"]}}}
        if "partitionBackfillsOrError" in body["query"]:
            found = [b for b in state["backfills"] if variables.get("status") in (None, b["status"])][: variables.get("limit") or 100]
            return {"data": {"partitionBackfillsOrError": {"__typename": "PartitionBackfills", "results": found}}}
        found = [b for b in state["backfills"] if b["id"] == variables["id"]]
        if not found:
            return {"data": {"partitionBackfillOrError": {"__typename": "BackfillNotFoundError", "message": "not found"}}}
        return {"data": {"partitionBackfillOrError": {"__typename": "PartitionBackfill", **found[0]}}}

    return app



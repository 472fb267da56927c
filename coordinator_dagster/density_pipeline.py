"""Density competitions in the live pipeline: the lake work of the `density_predictions` and
`density_round_scores` assets, as plain functions over the lake and polars frames.

- Rounds come from the contract's prediction profiles (`prediction_profiles.density_rounds`); an
  hour partition holds the rounds whose time falls in it.
- Predicting an hour asks the trackers (a `DensityRoundDriver`) every round of the hour that is
  due and not yet recorded, in time order, each tick carrying the prices up to the round (the
  warm-up history on a tracker's first tick). Recorded answers are facts: a round is never asked
  twice and an existing row is never rewritten. In a live run (one tagged with its round) a round
  more than one profile interval older than the live round is recorded ABSENT as missed rather
  than asked late; a replay asks every due round.
- Prices are the feed's records at their close time (a candle's close one granularity after its
  open; a tick at its own time), the same prices the demo's synthetic candles give.
- Scoring an hour scores the rounds of that hour whose truth (the price one horizon later) has
  landed, with `scoring.density.rounds.round_scores`, and replaces the hour's partition of
  `density_round_scores`: re-scoring is a re-materialization.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.lake import schemas
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.models.density_rounds import DensityRoundDriver
from coordinator_dagster.prediction_profiles import PredictionProfile, density_rounds, warm_up_seconds
from coordinator_dagster.scoring.density.rounds import CrpsConfig, DensityAnswer, round_scores
from coordinator_dagster.scoring.scores import with_close_ts
from coordinator_dagster.statuses import PredictionStatus
from coordinator_dagster.windows import window_keys_between, window_start

PREDICTIONS = "density_predictions"
SCORES = "density_round_scores"
ROUND_ID = ["profile", "subject", "performed_at"]
HOUR = dt.timedelta(hours=1)


def active_profiles(contract: CrunchContract) -> list[PredictionProfile]:
    return [p for p in contract.prediction_profiles if p.active]


def feed_prices(records: pl.DataFrame) -> pl.DataFrame:
    """subject, ts_event (the record's close time), price: one row per feed record."""
    return (
        with_close_ts(records)
        .select("subject", pl.col("close_ts").alias("ts_event"), pl.coalesce("close", "price").alias("price"))
        .drop_nulls("price")
        .unique(["subject", "ts_event"], keep="last", maintain_order=True)
        .sort("subject", "ts_event")
    )


def read_prices(store: Lake, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The prices closing in [start, end] (read from the hour before `start`, where a candle that
    closes at `start` opens)."""
    prices = feed_prices(store.read_window("feed_records", start - HOUR, end + dt.timedelta(microseconds=1)))
    return prices.filter(pl.col("ts_event").is_between(start, end))


def hour_rounds(contract: CrunchContract, key: str, until: dt.datetime) -> pl.DataFrame:
    """The profile rounds of hour `key` performed at or before `until`."""
    start = window_start(key)
    # Round times are whole seconds: [start, until + 1 s) holds the rounds at or before `until`.
    end = min(start + HOUR, until.replace(microsecond=0) + dt.timedelta(seconds=1))
    return density_rounds(active_profiles(contract), start, end) if end > start else density_rounds([], start, start)


def answer_rows(answers: Iterable[DensityAnswer], asked_at: dt.datetime, answer_seconds: Mapping[str, float] | None = None) -> pl.DataFrame:
    """DENSITY_PREDICTIONS rows of answers given at `asked_at` (densities as JSON)."""
    seconds = answer_seconds or {}
    rows = [
        {
            "model_id": a.model_id,
            "subject": a.subject,
            "profile": a.profile,
            "horizon_seconds": a.horizon_seconds,
            "performed_at": a.performed_at,
            "resolvable_at": a.performed_at + dt.timedelta(seconds=a.horizon_seconds),
            "asked_at": asked_at,
            "lateness_seconds": (asked_at - a.performed_at).total_seconds(),
            "answer_seconds": seconds.get(a.model_id) if a.status == PredictionStatus.PENDING else None,
            "status": str(a.status),
            "failed_reason": a.failed_reason,
            "densities": json.dumps({str(k): v for k, v in a.densities.items()}, sort_keys=True) if a.densities is not None else None,
        }
        for a in answers
    ]
    return pl.DataFrame(rows, schema=schemas.DENSITY_PREDICTIONS) if rows else schemas.empty(schemas.DENSITY_PREDICTIONS)


def row_answers(frame: pl.DataFrame) -> list[DensityAnswer]:
    """The answers recorded in DENSITY_PREDICTIONS rows (what `round_scores` takes)."""
    return [
        DensityAnswer(
            r["model_id"], r["subject"], r["profile"], r["horizon_seconds"], r["performed_at"],
            {int(k): v for k, v in json.loads(r["densities"]).items()} if r["densities"] is not None else None,
            PredictionStatus(r["status"]), r["failed_reason"],
        )
        for r in frame.iter_rows(named=True)
    ]


def missed_answers(rounds: pl.DataFrame, model_ids: Sequence[str], live_round: dt.datetime) -> list[DensityAnswer]:
    """ABSENT answers of every model to rounds that passed before the live round."""
    return [
        DensityAnswer(m, r["subject"], r["profile"], r["horizon_seconds"], r["performed_at"], None, PredictionStatus.ABSENT,
                      f"missed: the node was not predicting at the round's time (live round {live_round:%Y-%m-%dT%H:%M:%SZ})")
        for r in rounds.iter_rows(named=True)
        for m in model_ids
    ]


def split_missed(todo: pl.DataFrame, contract: CrunchContract, live_round: dt.datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rounds still to ask, rounds passed over): a round more than its profile's interval older
    than the live round is passed over."""
    intervals = {p.name: p.interval_seconds for p in contract.prediction_profiles}
    age = (pl.lit(live_round) - pl.col("performed_at")).dt.total_seconds()
    late = age > pl.col("profile").replace_strict(intervals, return_dtype=pl.Int64)
    return todo.filter(~late), todo.filter(late)


def predict_hour(
    store: Lake, contract: CrunchContract, driver: DensityRoundDriver, key: str, now: dt.datetime, live_round: dt.datetime | None = None,
) -> pl.DataFrame:
    """Ask the trackers every due, unrecorded round of hour `key`; returns the rows it added.

    Held under the partition's lock across read-ask-write, so two runs of one hour never ask a
    round twice."""
    by_name = {p.name: p for p in contract.prediction_profiles}
    with store.partition_lock(PREDICTIONS, key):
        existing = store.read(PREDICTIONS, key)
        rounds = hour_rounds(contract, key, min(now, live_round) if live_round is not None else now)
        todo = rounds.join(existing.select(ROUND_ID).unique(), on=ROUND_ID, how="anti").sort("performed_at", maintain_order=True)
        fresh = [answer_rows([], now)]
        if live_round is not None and todo.height:
            todo, late = split_missed(todo, contract, live_round)
            fresh.append(answer_rows(missed_answers(late, list(driver.trackers), live_round), now))
        if todo.height:
            first, last = todo["performed_at"].min(), todo["performed_at"].max()
            history = dt.timedelta(seconds=warm_up_seconds(by_name.values()))
            prices = read_prices(store, first - history, last)
            for (performed_at,), part in todo.group_by("performed_at", maintain_order=True):
                driver.tick(prices, performed_at)
                for row in part.iter_rows(named=True):
                    answers = driver.ask(by_name[row["profile"]], row["subject"], performed_at)
                    fresh.append(answer_rows(answers, now, driver.answer_seconds))
        added = pl.concat(fresh)
        if added.height or not store.exists(PREDICTIONS, key):
            store.write(PREDICTIONS, pl.concat([existing, added]).sort("performed_at", "profile", "subject", "model_id", maintain_order=True), key)
    return added


def longest_horizon(contract: CrunchContract) -> dt.timedelta:
    return dt.timedelta(seconds=max((p.horizon_seconds for p in contract.prediction_profiles), default=0))


def resolved(predictions: pl.DataFrame, prices: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """The predictions whose truth has landed: resolvable_at is past and a price of their asset
    was recorded at or after it."""
    newest = prices.group_by("subject").agg(pl.col("ts_event").max().alias("newest"))
    return (
        predictions.join(newest, on="subject", how="left")
        .filter((pl.col("resolvable_at") <= now) & (pl.col("resolvable_at") <= pl.col("newest")))
        .drop("newest")
    )


def score_hour(store: Lake, contract: CrunchContract, key: str, now: dt.datetime, config: CrpsConfig | None = None) -> pl.DataFrame:
    """Score the resolved rounds of hour `key` and replace its `density_round_scores` partition."""
    start = window_start(key)
    predictions = store.read(PREDICTIONS, key)
    prices = read_prices(store, start, min(start + HOUR + longest_horizon(contract), now))
    ready = resolved(predictions, prices, now)
    scores = round_scores(row_answers(ready), prices, config) if ready.height else schemas.empty(schemas.DENSITY_ROUND_SCORES)
    store.write(SCORES, scores, key)
    return scores


def score_window(store: Lake, contract: CrunchContract, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> pl.DataFrame:
    """`score_hour` for every hour of [start, end); the rows written."""
    parts = [score_hour(store, contract, key, now) for key in window_keys_between(start, end)]
    return pl.concat(parts) if parts else schemas.empty(schemas.DENSITY_ROUND_SCORES)


__all__ = [
    "PREDICTIONS", "SCORES", "answer_rows", "feed_prices", "hour_rounds", "predict_hour", "read_prices", "resolved",
    "row_answers", "score_hour", "score_window",
]

"""The round engine as it runs under `make run`: inside `coordinator feeds listen`, a real
subprocess, over the synthetic feed in real time (one-second ticks, a round every two seconds).
Each round's predictions are persisted once and reported to the Dagster instance at DAGSTER_HOME
as runless materializations, once each."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from coordinator_dagster.engine.round_engine import ROUND_KEY
from coordinator_dagster.lake.store import Lake
from coordinator_dagster.windows import window_key
from tests.process_support import wait_for

pytestmark = pytest.mark.process

CONTRACT = '''
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.domain_types import PredictionScope, ScheduledPrediction

CONTRACT = CrunchContract(
    scheduled_predictions=[
        ScheduledPrediction(
            scope_key="btc-2s",
            scope=PredictionScope(subject="BTC", step_seconds=1, horizon_seconds=2),
            prediction_interval_seconds=2,
            resolve_horizon_seconds=2,
        )
    ],
)
'''
MODELS = 3  # the example models, run in the listener's process


def persisted(home: Path) -> pl.DataFrame:
    from coordinator_dagster.contracts import load_contract

    lake = Lake.for_contract(home, load_contract("fast_contract:CONTRACT"))
    frames = [pl.read_parquet(path) for path in lake.files("predictions")]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def test_the_listeners_engine_persists_and_reports_each_round_once(tmp_path, monkeypatch):
    (tmp_path / "fast_contract.py").write_text(CONTRACT)
    monkeypatch.syspath_prepend(str(tmp_path))
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_RUNNER", "MODELS_MANIFEST", "DAGSTER_PG_URL", "FEED_"))}
    env.update(
        COORDINATOR_HOME=str(home), DAGSTER_HOME=str(dagster_home), CRUNCH_CONFIG_MODULE="fast_contract:CONTRACT",
        PYTHONPATH=os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]),
        FEED_SOURCE="synthetic", FEED_KIND="tick", FEED_GRANULARITY="1s", FEED_SUBJECTS="BTC", FEED_LIVE="1",
    )
    command = [str(Path(sys.executable).parent / "coordinator"), "feeds", "listen", "--initial-backfill-minutes", "0"]
    log = (tmp_path / "listen.log").open("w")
    node = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Two rounds predicted by every model (generous: the process imports Dagster and polars).
        full = lambda: (f := persisted(home)).height and f.group_by("round_ts").len().filter(pl.col("len") == MODELS).height >= 2  # noqa: E731
        assert wait_for(full, 180), (tmp_path / "listen.log").read_text()
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
        log.close()

    rows = persisted(home)
    assert rows.height and rows["prediction_id"].n_unique() == rows.height
    per_model = rows.group_by("round_ts", "model_id").len()
    assert set(per_model["len"]) == {1}  # each round asked of each model once, never rewritten
    rounds = sorted(rows["round_ts"].unique())
    assert len(rounds) >= 2

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        records = instance.fetch_materializations(dg.AssetKey("predictions"), limit=1000).records
        by_round: dict[str, list] = {}
        for record in records:
            stamp = record.asset_materialization.metadata.get(ROUND_KEY)
            if stamp is not None:
                by_round.setdefault(stamp.value, []).append(record)
    finally:
        instance.dispose()
    from coordinator_dagster.models.rounds import round_stamp

    for round_ts in rounds:
        [record] = by_round[round_stamp(round_ts)]  # reported exactly once
        assert record.run_id == ""  # a runless materialization
        assert record.asset_materialization.partition == window_key(round_ts)
        reported = record.asset_materialization.metadata["new_rows"].value
        assert reported == rows.filter(pl.col("round_ts") == round_ts).height == MODELS
    assert set(by_round) == {round_stamp(r) for r in rounds}  # nothing reported that was not written

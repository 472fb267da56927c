"""`coordinator init-workspace NAME --template tournament`: the generated house-price tournament
passes its own `make test`, its `make demo` drives rounds through the round assets and prints the
leaderboard and a round's checkpoint, and its code location loads with Dagster."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from tests.test_init_workspace import init, make

pytestmark = pytest.mark.process  # make, pytest and dagster run as subprocesses

MODELS = {"median", "per-sqft", "linear"}


def test_the_tournament_workspace_passes_its_tests_and_runs_its_demo(tmp_path):
    assert init("house-cup", "--template", "tournament", "--dir", str(tmp_path)) == 0
    workspace = tmp_path / "house-cup"
    for path in ("Makefile", ".env", "workspace.yaml", "definitions.py", "tests/test_contract.py", "house_cup/contract.py",
                 "house_cup/models/example_model.py", "house_cup/models/manifest.json",
                 "house_cup/data/round-example/features.json", "house_cup/data/round-example/truth.json"):
        assert (workspace / path).is_file(), path
    assert "build_tournament_defs()" in (workspace / "definitions.py").read_text()
    manifest = json.loads((workspace / "house_cup" / "models" / "manifest.json").read_text())
    assert {entry["model_id"] for entry in manifest} == MODELS

    tests = make(workspace, "test", timeout=300)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"\d+ passed", tests.stdout) and "failed" not in tests.stdout

    demo = make(workspace, "demo", "DEMO_ARGS=--days 2", timeout=300)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    lake = workspace / ".coordinator" / "demo" / "lake" / "tournament"
    assert f"Leaderboard of the lake {lake} (2 rounds; predictions: 4 FAILED, 146 SCORED)" in demo.stdout
    assert "Checkpoint round-2026-11-21 (round round-2026-11-21), PENDING" in demo.stdout
    assert "total 1,000,000,000 (must be 1,000,000,000)" in demo.stdout

    board = pl.read_parquet(lake / "leaderboard" / "data.parquet")
    assert set(board["model_id"]) == MODELS and board["rank"].to_list() == [1, 2, 3]
    predictions = pl.concat([pl.read_parquet(f) for f in sorted((lake / "predictions").rglob("*.parquet"))])
    assert predictions.height == 2 * 25 * 3  # every model once per house of both rounds
    # The houses without an area fail the price-per-sqft model only; its other houses are scored.
    failed = predictions.filter(status="FAILED")
    assert set(failed["model_id"]) == {"per-sqft"} and failed.height == 2 * 2  # houses 10 and 20 of each round
    scores = pl.concat([pl.read_parquet(f) for f in sorted((lake / "scores").rglob("*.parquet"))])
    assert scores.height == predictions.height - failed.height and scores["success"].all()
    assert scores.join(failed, on="prediction_id").is_empty()
    for path in sorted((lake / "checkpoints").rglob("*.parquet")):
        emission = json.loads(pl.read_parquet(path)["emission"][0])
        assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) == FRAC64_MULTIPLIER

    validate = make(workspace, "validate", timeout=300)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "Validation successful for code location house-cup" in validate.stdout + validate.stderr

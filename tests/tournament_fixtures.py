"""A house-price tournament for the tournament tests: its contract (no scheduled rounds: rounds
come from uploads), three models and a manifest writer. Imported by the tests, not a fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from coordinator_dagster.contracts import Aggregation, CrunchContract
from coordinator_dagster.scoring.tournament import house_price_score

HOUSES = [
    {"sample_id": "h1", "living_area_sqft": 1000.0},
    {"sample_id": "h2", "living_area_sqft": 1500.0},
    {"sample_id": "h3", "living_area_sqft": 2000.0},
    {"sample_id": "h4", "living_area_sqft": 2500.0},
]
PRICES = [
    {"sample_id": "h1", "price": 200_000.0},
    {"sample_id": "h2", "price": 300_000.0},
    {"sample_id": "h3", "price": 400_000.0},
    {"sample_id": "h4", "price": 500_000.0},
]


class HousePrice(BaseModel):
    model_config = ConfigDict(extra="allow")

    prediction: float


def build_contract() -> CrunchContract:
    return CrunchContract(
        scheduled_predictions=[],
        output_type=HousePrice,
        scoring_function=house_price_score,
        aggregation=Aggregation(windows={"score_recent": 24, "score_steady": 72}, ranking_key="score_recent"),
        metrics=[],
        crunch_pubkey="TournamentPubkey1111111111111111111111111111",
    )


class Exact:
    """$200 per square foot: every house of HOUSES exactly."""

    def predict(self, features: dict[str, Any]) -> dict[str, Any]:
        return {"prediction": features["living_area_sqft"] * 200}


class Flaky(Exact):
    """Exact, except that it raises on the 1500 sqft house."""

    def predict(self, features: dict[str, Any]) -> dict[str, Any]:
        if features["living_area_sqft"] == 1500:
            raise RuntimeError("cannot price this one")
        return super().predict(features)


class Median:
    def predict(self, features: dict[str, Any]) -> dict[str, Any]:
        return {"prediction": 350_000.0}


def write_manifest(folder: Path) -> Path:
    entries = [
        {"model_id": model_id, "name": model_id.title(), "cruncher": f"c-{model_id}", "cruncher_index": index,
         "entrypoint": f"tests.tournament_fixtures:{cls}", "path": str(Path(__file__).resolve().parents[1])}
        for index, (model_id, cls) in enumerate([("exact", "Exact"), ("flaky", "Flaky"), ("median", "Median")])
    ]
    path = folder / "manifest.json"
    path.write_text(json.dumps(entries))
    return path

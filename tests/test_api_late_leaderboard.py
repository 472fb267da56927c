"""The late track beside the ranking: each leaderboard row carries `late_count` and
`late_score_mean` from `late_scores`, the dashboard's schema has their columns, and neither
changes a rank, a ranked figure or an emission."""

from __future__ import annotations

import httpx
import polars as pl
import pytest

from api.app import create_app
from api.settings import ApiSettings
from coordinator_dagster.partitions import WINDOW_KEY_FORMAT
from tests.api_fixtures import CHECKPOINT_KEYS, seed_extras, seed_lake, serve

pytestmark = pytest.mark.process

NO_CACHE = {"cache-control": "no-cache"}


def test_late_fields_sit_beside_the_ranking_and_never_move_it(tmp_path) -> None:
    seeded = seed_lake(tmp_path / "home")
    seed_extras(seeded.lake)
    lake = seeded.lake
    app = create_app(ApiSettings(home=lake.home))
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=60, headers=NO_CACHE) as client:
        before = client.get("/reports/leaderboard").json()
        emission = client.get(f"/reports/checkpoints/CKP-{CHECKPOINT_KEYS[1]}/emission").content
        assert before and all(row["late_count"] == 0 and row["late_score_mean"] is None for row in before)

        # Three late answers of the last-ranked model, one of which failed to score: the mean
        # is over the two that scored, (0.5 + 1.0) / 2 = 0.75, however large (it is not ranked).
        last = before[-1]["model_id"]
        scores = lake.read_all("scores").filter(pl.col("model_id") == last)
        late = scores.head(3)
        late = late.with_columns(
            pl.Series("value", [0.5, 1.0, None], dtype=pl.Float64),
            pl.Series("success", [True, True, False]),
            pl.lit(late["round_ts"][0]).alias("round_ts"),
        )
        lake.write("late_scores", late, late["round_ts"][0].strftime(WINDOW_KEY_FORMAT))

        after = client.get("/reports/leaderboard").json()
        by_model = {row["model_id"]: row for row in after}
        assert by_model[last]["late_count"] == 3
        assert by_model[last]["late_score_mean"] == pytest.approx(0.75)
        assert all(row["late_count"] == 0 and row["late_score_mean"] is None for row in after if row["model_id"] != last)
        # Everything ranked is as it was: order, ranks, windows, ranking value; the emission too.
        strip = lambda rows: [{k: v for k, v in row.items() if not k.startswith("late_")} for row in rows]  # noqa: E731
        assert strip(after) == strip(before)
        assert client.get(f"/reports/checkpoints/CKP-{CHECKPOINT_KEYS[1]}/emission").content == emission

        columns = {c["property"]: c for c in client.get("/reports/schema/leaderboard-columns").json()}
        assert columns["late_count"]["type"] == "VALUE" and columns["late_score_mean"]["type"] == "VALUE"
        ranked_orders = [c["order"] for p, c in columns.items() if not p.startswith("late_")]
        assert min(columns["late_count"]["order"], columns["late_score_mean"]["order"]) > max(ranked_orders)
        assert len({c["id"] for c in columns.values()}) == len(columns)
        assert client.get("/reports/schema").json()["leaderboard_columns"] == list(columns.values())

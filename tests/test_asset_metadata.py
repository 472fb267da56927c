"""The metadata the assets show in the Dagster UI: the SVG charts (assets/plots.py),
the summary tables (assets/metadata.py), and what each asset's materialization carries."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import xml.etree.ElementTree as ET

import dagster as dg
import polars as pl
import pytest

from assets import default_assets
from assets.metadata import (
    PLOT_MAX_POINTS,
    emission_markdown,
    emission_shares,
    leaderboard_metadata,
    leaderboard_top,
    price_charts,
    price_series,
    score_summary,
    snapshot_summary,
)
from assets import plots
from coordinator_dagster.lake import schemas
from coordinator_dagster.domain_types import FRAC64_MULTIPLIER
from coordinator_dagster.scoring.emission import default_build_emission, emission_from_shares
from tests.conftest import HOUR, HOUR_KEY, pipeline_resources

SVG = "{http://www.w3.org/2000/svg}"
UTC = dt.timezone.utc
IMAGE = re.compile(r"!\[([^\]]*)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)")


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def polyline_points(element: ET.Element) -> list[tuple[float, float]]:
    return [tuple(float(v) for v in pair.split(",")) for pair in element.get("points").split()]


def images(markdown: str) -> list[tuple[str, ET.Element]]:
    return [(alt, parse(base64.b64decode(data).decode())) for alt, data in IMAGE.findall(markdown)]


# ---- plots ----------------------------------------------------------------------------------


def test_line_chart_draws_one_polyline_per_series_with_every_point():
    series = {"BTC": [(float(i), 100.0 + i) for i in range(30)], "ETH": [(float(i), 90.0 - i) for i in range(12)]}
    root = parse(plots.line_chart(series, title="prices", x_labels=("10:00", "10:29")))
    lines = root.findall(f"{SVG}polyline")
    assert [line.get("data-series") for line in lines] == ["BTC", "ETH"]
    assert [len(polyline_points(line)) for line in lines] == [30, 12]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "prices" in texts and "10:00" in texts and "10:29" in texts
    # The y range is the data's: 129 (BTC's last) at the top, 79 (ETH's last) at the bottom.
    assert "129" in texts and "79" in texts  # 4 significant digits
    btc = polyline_points(lines[0])
    assert btc[0][0] < btc[-1][0] and btc[0][1] > btc[-1][1]  # rising price: higher on screen (smaller y)
    width, height = int(root.get("width")), int(root.get("height"))
    assert all(plots.LEFT <= x <= width - plots.RIGHT and plots.TOP <= y <= height - plots.BOTTOM for x, y in btc)


def test_axis_labels_stay_short():
    texts = [t.text for t in parse(plots.line_chart({"BTC": [(0, 22372.81), (1, 22897.7)]}, title="t")).iter(f"{SVG}text")]
    assert "22,898" in texts and "22,373" in texts
    texts = [t.text for t in parse(plots.bar_chart({"m": {"w": -1.0636712e-05}}, title="t")).iter(f"{SVG}text")]
    assert "-1.064e-05" in texts and "0" in texts


def test_line_chart_leaves_out_non_finite_points_and_says_when_nothing_is_left():
    root = parse(plots.line_chart({"BTC": [(0, 1.0), (1, math.nan), (2, math.inf), (3, 2.0)]}, title="t"))
    [line] = root.findall(f"{SVG}polyline")
    assert len(polyline_points(line)) == 2
    empty = parse(plots.line_chart({"BTC": [(0, math.nan)], "ETH": []}, title="t"))
    assert not empty.findall(f"{SVG}polyline") and "no data" in [t.text for t in empty.iter(f"{SVG}text")]


def test_a_flat_series_and_a_single_point_still_draw_inside_the_plot():
    root = parse(plots.line_chart({"A": [(5, 3.0)], "B": [(5, 3.0), (6, 3.0)]}, title="flat"))
    points = [p for line in root.findall(f"{SVG}polyline") for p in polyline_points(line)]
    assert len(points) == 3 and all(math.isfinite(x) and math.isfinite(y) for x, y in points)


def test_chart_text_is_escaped():
    root = parse(plots.line_chart({'a<b&"c"': [(0, 1.0), (1, 2.0)]}, title="<script>&"))
    assert root.find(f"{SVG}polyline").get("data-series") == 'a<b&"c"'
    assert "<script>&" in [t.text for t in root.iter(f"{SVG}text")]


def test_bar_chart_draws_a_bar_per_finite_value_on_the_right_side_of_zero():
    groups = {"m1": {"recent": 0.5, "steady": -0.25}, "m2": {"recent": None, "steady": 0.1}, "m3": {"recent": math.nan}}
    root = parse(plots.bar_chart(groups, title="window scores"))
    bars = {(r.get("data-group"), r.get("data-series")): r for r in root.findall(f"{SVG}rect") if r.get("data-group")}
    assert set(bars) == {("m1", "recent"), ("m1", "steady"), ("m2", "steady")}
    zero = float(next(line.get("y1") for line in root.findall(f"{SVG}line") if line.get("stroke-dasharray")))
    positive, negative = bars[("m1", "recent")], bars[("m1", "steady")]
    assert float(positive.get("y")) + float(positive.get("height")) == pytest.approx(zero, abs=0.1)
    assert float(negative.get("y")) == pytest.approx(zero, abs=0.1)
    # Heights are proportional: 0.5 is twice 0.25.
    assert float(positive.get("height")) == pytest.approx(2 * float(negative.get("height")), rel=0.01)
    assert parse(plots.bar_chart({"m": {"w": None}}, title="t")).findall(f"{SVG}rect")[-1].get("data-group") is None


def test_downsample_keeps_the_ends_and_the_count():
    points = [(float(i), float(i)) for i in range(1000)]
    picked = plots.downsample(points, 50)
    assert len(picked) == 50 and picked[0] == points[0] and picked[-1] == points[-1]
    assert [p[0] for p in picked] == sorted(p[0] for p in picked)
    assert plots.downsample(points[:10], 50) == points[:10]
    with pytest.raises(ValueError, match="at least 2"):
        plots.downsample(points, 1)


def test_a_chart_too_small_to_draw_is_refused():
    with pytest.raises(ValueError, match="at least"):
        plots.line_chart({"A": [(0, 1.0)]}, title="t", width=50, height=50)


def test_markdown_image_round_trips_the_svg():
    svg = plots.line_chart({"A": [(0, 1.0), (1, 2.0)]}, title="t")
    markdown = plots.markdown_image(svg, "a [chart]")
    [(alt, root)] = images(markdown)
    assert alt == "a [chart)" and ET.tostring(root) == ET.tostring(parse(svg))


# ---- summaries ------------------------------------------------------------------------------


def feed(minutes: int, subjects=("BTC", "ETH")) -> pl.DataFrame:
    rows = [
        {"source": "synthetic", "subject": s, "kind": "candle", "granularity": "1m", "ts_event": HOUR + dt.timedelta(minutes=m),
         "open": 1.0, "high": 1.0, "low": 1.0, "close": (100.0 if s == "BTC" else 10.0) + m, "volume": 1.0, "price": None}
        for s in subjects
        for m in range(minutes)
    ]
    return pl.DataFrame(rows, schema=schemas.FEED_RECORDS)


def test_price_charts_draw_each_subject_apart_and_cap_the_points():
    records = feed(600)
    series = price_series(records)
    assert set(series) == {"BTC", "ETH"} and len(series["BTC"]) == 600
    assert series["ETH"][0] == (HOUR.timestamp(), 10.0)
    drawn = images(price_charts(records))
    assert [alt for alt, _ in drawn] == ["BTC close price", "ETH close price"]
    for _, root in drawn:
        [line] = root.findall(f"{SVG}polyline")
        assert len(polyline_points(line)) == PLOT_MAX_POINTS
    assert len(polyline_points(images(price_charts(feed(60)))[0][1].find(f"{SVG}polyline"))) == 60
    assert price_charts(feed(0)) == "_no records_"


def test_score_summary_per_model():
    scores = pl.DataFrame(
        {
            "model_id": ["a", "a", "a", "b", "b"],
            "value": [1.0, 3.0, None, -2.0, math.nan],
            "success": [True, True, False, True, False],
        }
    )
    summary = {row["model_id"]: row for row in score_summary(scores).iter_rows(named=True)}
    assert summary["a"] == {"model_id": "a", "count": 3, "failed": 1, "mean": 2.0, "min": 1.0, "max": 3.0}
    assert summary["b"] == {"model_id": "b", "count": 2, "failed": 1, "mean": -2.0, "min": -2.0, "max": -2.0}
    assert score_summary(scores.clear()).is_empty()


def test_snapshot_summary_per_model():
    snaps = pl.DataFrame(
        {"model_id": ["a", "a", "b"], "prediction_count": [10, 10, 5], "scored_count": [8, 9, 5], "failed_count": [2, 1, 0], "value": [0.2, 0.4, math.nan]}
    )
    summary = {row["model_id"]: row for row in snapshot_summary(snaps).iter_rows(named=True)}
    assert summary["a"]["hours"] == 2 and summary["a"]["scored_count"] == 17 and summary["a"]["mean_value"] == pytest.approx(0.3)
    assert summary["b"]["mean_value"] is None


def board() -> pl.DataFrame:
    rows = [
        {"rank": r, "model_id": f"m{r}", "model_name": f"M{r}", "cruncher": f"c{r}", "ranking_key": "score_recent",
         "ranking_value": 1.0 - r / 10, "is_ensemble": False, "score_recent": 1.0 - r / 10, "score_steady": 0.5 - r / 20,
         "score_anchor": None, "prediction_count": 100, "as_of": HOUR}
        for r in range(12, 0, -1)
    ]
    rows.append({**rows[-1], "rank": None, "model_id": "__ensemble_main__", "is_ensemble": True})
    return pl.DataFrame(rows)


def test_leaderboard_metadata_shows_the_top_ranked_models_and_their_window_scores():
    windows = ["score_recent", "score_steady", "score_anchor"]
    top = leaderboard_top(board(), windows)
    assert top["model_id"].to_list() == [f"m{r}" for r in range(1, 11)]  # ensemble out, best first, 10 rows
    metadata = leaderboard_metadata(board(), windows)
    assert metadata["dagster/row_count"] == 13 and metadata["ranked_models"] == 12 and metadata["leader"] == "m1"
    table = metadata["preview"].value.splitlines()
    assert table[0] == "| rank | model_id | model_name | cruncher | score_recent | score_steady | score_anchor | prediction_count |"
    assert table[2].startswith("| 1 | m1 | M1 | c1 | 0.9 | 0.45 |") and len(table) == 12
    [(alt, chart)] = images(metadata["window_scores"].value)
    bars = [r for r in chart.findall(f"{SVG}rect") if r.get("data-group")]
    assert len(bars) == 20  # 10 models × 2 windows with values (score_anchor is empty)
    empty = leaderboard_metadata(board().clear(), windows)
    assert empty["leader"] == "none" and empty["preview"].value == "_no rows_"


def entries(count: int, same_cruncher: bool = False) -> list[dict]:
    return [
        {"rank": r, "model_id": f"m{r}", "cruncher": "alice" if same_cruncher else f"c{r}", "cruncher_index": 1 if same_cruncher else r + 10}
        for r in range(1, count + 1)
    ]


@pytest.mark.parametrize("count", [1, 3, 7, 12])
def test_emission_shares_sum_to_100_percent(count):
    ranked = entries(count)
    emission = default_build_emission(ranked, "Crunch1111").model_dump(mode="json")
    shares = emission_shares(ranked, emission)
    assert shares.height == count and shares["reward_pct"].sum() == FRAC64_MULTIPLIER
    assert shares["share_percent"].sum() == pytest.approx(100.0, abs=1e-9)
    assert shares["rank"].to_list() == list(range(1, count + 1))
    assert shares["share_percent"].to_list() == pytest.approx([r / FRAC64_MULTIPLIER * 100 for r in shares["reward_pct"]], rel=1e-12)
    lines = emission_markdown(shares).splitlines()
    assert lines[0] == "| rank | cruncher | cruncher_index | models | reward_pct | share_percent |"
    assert len(lines) == 2 + count + 1 and lines[-1].endswith(f"| {FRAC64_MULTIPLIER} | 100.0000 % |")


def test_emission_shares_in_percent_of_frac64():
    ranked = entries(3)
    emission = emission_from_shares(ranked, [500_000_000, 333_333_334, 166_666_666], "Crunch1111", None, None).model_dump(mode="json")
    shares = emission_shares(ranked, emission)
    assert shares["share_percent"].to_list() == [50.0, 33.3333334, 16.6666666]
    assert "| 1 | c1 | 11 | m1 | 500000000 | 50.0000 % |" in emission_markdown(shares)


def test_one_cruncher_with_several_models_gets_one_row():
    ranked = entries(2, same_cruncher=True)
    emission = {"cruncher_rewards": [{"cruncher_index": 1, "reward_pct": FRAC64_MULTIPLIER}]}
    [row] = emission_shares(ranked, emission).to_dicts()
    assert row == {"rank": 1, "cruncher": "alice", "cruncher_index": 1, "models": "m1, m2", "reward_pct": FRAC64_MULTIPLIER, "share_percent": 100.0}
    assert emission_markdown(emission_shares([], {"cruncher_rewards": []})) == "_no scored models in this period_"


# ---- what the assets record -----------------------------------------------------------------


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    """Feed for 09:00–11:59, every window asset for 10:00, the leaderboard and the week's checkpoint."""
    resources = pipeline_resources(tmp_path_factory.mktemp("metadata") / "home", HOUR + dt.timedelta(hours=3))

    def run(selection, partition_key=None, tags=None):
        result = dg.materialize(default_assets, selection=selection, resources=resources, partition_key=partition_key, tags=tags)
        return {event.asset_key.to_user_string(): event.materialization.metadata for event in result.get_asset_materialization_events()}

    found = run(["feed_records"], tags={"dagster/asset_partition_range_start": "2026-11-20-09:00", "dagster/asset_partition_range_end": "2026-11-20-11:00"})
    found.update(run(["inputs", "predictions", "scores", "snapshots"], HOUR_KEY))
    found.update(run(["leaderboard"]))
    found.update(run(["checkpoints"], "2026-11-15"))
    return found


def test_feed_records_metadata_has_a_price_chart_per_subject(materialized):
    drawn = images(materialized["feed_records"]["prices"].value)
    assert [alt for alt, _ in drawn] == ["BTC close price", "ETH close price"]
    # Three hours of minute candles, downsampled to the cap.
    assert all(len(polyline_points(root.find(f"{SVG}polyline"))) == min(180, PLOT_MAX_POINTS) for _, root in drawn)


def test_scores_metadata_summarises_each_model(materialized):
    metadata = materialized["scores"]
    table = metadata["by_model"].value.splitlines()
    assert table[0] == "| model_id | count | failed | mean | min | max |"
    assert sorted(line.split(" | ")[0].strip("| ") for line in table[2:]) == ["contrarian", "mean-reversion", "momentum"]
    assert metadata["failed_scores"].value == 0
    assert all(line.split(" | ")[1] == "120" for line in table[2:])  # 60 rounds × 2 subjects each


def test_snapshots_metadata_summarises_each_model(materialized):
    table = materialized["snapshots"]["by_model"].value.splitlines()
    assert table[0].startswith("| model_id | hours | prediction_count | scored_count | failed_count | mean_value |")
    assert len(table) == 2 + 3


def test_leaderboard_metadata_has_the_top_table_and_the_window_chart(materialized):
    metadata = materialized["leaderboard"]
    assert metadata["ranked_models"].value == 3
    assert len(metadata["preview"].value.splitlines()) == 2 + 3
    [(_, chart)] = images(metadata["window_scores"].value)
    groups = {r.get("data-group") for r in chart.findall(f"{SVG}rect") if r.get("data-group")}
    assert groups == {"momentum", "mean-reversion", "contrarian"}


def test_checkpoint_metadata_reads_100_percent(materialized):
    metadata = materialized["checkpoints"]
    table = metadata["emission"].value.splitlines()
    assert table[-1].endswith(f"| {FRAC64_MULTIPLIER} | 100.0000 % |")
    percents = [float(line.split(" | ")[-1].rstrip(" %|")) for line in table[2:-1]]
    assert len(percents) == 3 and sum(percents) == pytest.approx(100.0, abs=1e-3)
    assert json.loads(json.dumps(metadata["cruncher_reward_total"].value)) == FRAC64_MULTIPLIER

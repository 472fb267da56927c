"""Leaderboards per group of rounds (`coordinator_dagster.scoring.group_ranking`): windows, the
asset-weighted overall score, ranks per horizon and per asset × horizon, the published shape."""

import datetime as dt

import polars as pl
import pytest

from coordinator_dagster.scoring import group_ranking as g

T = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
WINDOWS = {"score_recent": 24, "score_steady": 72, "score_anchor": 168}


def rounds(rows):
    return pl.DataFrame(
        rows, schema={"model_id": pl.String, "subject": pl.String, "horizon_seconds": pl.Int64, "performed_at": pl.Datetime("us", "UTC"), "score": pl.Float64, "asset_weight": pl.Float64},
        orient="row",
    )


def test_windows_count_rounds_by_when_they_resolve():
    # Hourly rounds of one model resolve at T + 1 h … T + 100 h; as_of is the newest, T + 100 h.
    frame = rounds([("a", "BTC", 3600, T + dt.timedelta(hours=k), float(k), 1.0) for k in range(100)])
    board = g.group_leaderboard(frame, WINDOWS, "score_anchor")
    row = board.filter(pl.col("group_kind") == "horizon").row(0, named=True)
    assert row["as_of"] == T + dt.timedelta(hours=100)
    # recent: resolving in (T + 76 h, T + 100 h] → rounds 76..99, mean 87.5; steady: 28..99 → 63.5;
    # anchor: all 100 → 49.5.
    assert (row["score_recent"], row["score_steady"], row["score_anchor"]) == (87.5, 63.5, 49.5)
    assert row["round_count"] == 100 and row["ranking_value"] == 49.5
    # `now` before the newest resolution caps the windows' end; rounds not yet resolved do not count.
    capped = g.group_leaderboard(frame, WINDOWS, "score_anchor", now=T + dt.timedelta(hours=50, minutes=30))
    assert capped.filter(pl.col("group_kind") == "horizon")["score_anchor"][0] == 24.5  # rounds 0..49


def test_overall_is_the_asset_weighted_mean_of_asset_means_and_groups_rank_apart():
    frame = rounds(
        [
            # a: BTC (weight 2) 0.9 and ETH (weight 1) 0.3 → overall (2 × 0.9 + 0.3) / 3 = 0.7
            ("a", "BTC", 3600, T, 0.9, 2.0), ("a", "ETH", 3600, T, 0.3, 1.0),
            ("a", "BTC", 86400, T, 0.2, 2.0),
            # b: BTC 0.6 and ETH 0.8 → (1.2 + 0.8) / 3 = 0.6667 at 3600; 0.5 at 86400
            ("b", "BTC", 3600, T, 0.6, 2.0), ("b", "ETH", 3600, T, 0.8, 1.0),
            ("b", "BTC", 86400, T, 0.5, 2.0),
        ]
    )
    board = g.group_leaderboard(frame, WINDOWS, "score_anchor")
    overall = dict(board.filter(pl.col("group_kind") == "overall").select("model_id", "score_anchor").iter_rows())
    # a: BTC mean (0.9 + 0.2) / 2 = 0.55, ETH 0.3 → (2 × 0.55 + 0.3) / 3; b: BTC 0.55, ETH 0.8.
    assert overall["a"] == pytest.approx((2 * 0.55 + 0.3) / 3) and overall["b"] == pytest.approx((2 * 0.55 + 0.8) / 3)
    ranks = {(r["group_key"], r["model_id"]): r["rank"] for r in board.iter_rows(named=True)}
    # 3600: a (0.6) vs b (0.7) by the mean of rounds; 86400: a 0.2 < b 0.5; BTC:3600: a 0.9 > b 0.6.
    assert ranks[("3600", "b")] == 1 and ranks[("3600", "a")] == 2
    assert ranks[("86400", "b")] == 1 and ranks[("BTC:3600", "a")] == 1 and ranks[("ETH:3600", "b")] == 1
    assert ranks[("", "b")] == 1
    assert set(board["group_kind"]) == {"overall", "horizon", "param"}


def test_a_model_without_a_ranking_value_has_no_rank_and_missing_scores_count_nowhere():
    frame = rounds([("a", "BTC", 60, T, 0.5, 1.0), ("b", "BTC", 60, T, None, 1.0), ("c", "BTC", 60, T, 0.5, 1.0)])
    board = g.group_leaderboard(frame, WINDOWS, "score_recent").filter(pl.col("group_kind") == "horizon")
    ranks = dict(board.select("model_id", "rank").iter_rows())
    assert ranks == {"a": 1, "c": 1, "b": None}  # dense: exact ties share a rank
    assert g.group_leaderboard(frame.clear(), WINDOWS, "score_recent").is_empty()
    with pytest.raises(ValueError):
        g.group_leaderboard(frame, WINDOWS, "nope")


def test_published_entries_follow_crunchdaos_leaderboard_shape():
    frame = rounds([("a", "BTC", 3600, T, 0.9, 1.0), ("a", "ETH", 86400, T, 0.4, 1.0), ("b", "BTC", 3600, T, 0.5, 1.0)])
    board = g.group_leaderboard(frame, WINDOWS, "score_anchor")
    models = pl.DataFrame({"model_id": ["a", "b"], "name": ["Alpha", "Beta"], "cruncher": ["alice", "bob"], "cruncher_index": [3, 4]})
    entries = g.published_entries(board, list(WINDOWS), models)
    assert [e["model_id"] for e in entries] == ["a", "b"]
    a = entries[0]
    assert a["rank"] == 1 and set(a["score"]) == {"recent", "steady", "anchor"}
    assert a["ranks_by_horizon"]["3600"] == {"rank": 1, "score": {"recent": 0.9, "steady": 0.9, "anchor": 0.9}}
    assert set(a["ranks_by_param"]) == {"BTC:3600", "ETH:86400"}
    assert (a["model_name"], a["player_name"], a["cruncher_index"]) == ("Alpha", "alice", 3)
    assert "86400" not in entries[1]["ranks_by_horizon"]


def test_round_scores_from_the_pipelines_scores():
    scores = pl.DataFrame(
        {
            "model_id": ["a", "a", "b"], "subject": ["BTC"] * 3, "scope_key": ["btc-60s", "btc-60s", "other"],
            "round_ts": [T] * 3, "resolvable_at": [T + dt.timedelta(minutes=1)] * 3,
            "value": [0.5, 0.7, 0.1], "success": [True, False, True],
        }
    )
    out = g.rounds_from_scores(scores, {"btc-60s": 60})
    assert out["horizon_seconds"].to_list() == [60, 60] and out["score"].to_list() == [0.5, None]


def test_markdown_tables_per_group():
    frame = rounds([("a", "BTC", 3600, T, 0.9, 1.0), ("b", "BTC", 3600, T, 0.5, 1.0)])
    board = g.group_leaderboard(frame, WINDOWS, "score_anchor")
    text = g.markdown_group_tables(board, list(WINDOWS), g.PARAM)
    assert "**BTC × 3600 s**" in text and "| 1 | a | 0.9000 | 0.9000 | 0.9000 | 1 |" in text
    assert g.markdown_group_tables(board.clear(), list(WINDOWS), g.HORIZON) == "_no scored rounds yet_"

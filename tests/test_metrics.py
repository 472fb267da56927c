"""Metrics: hand-computed cases, and the vectorized forms agree with the row-wise reference forms."""

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from coordinator_dagster.scoring import metrics
from coordinator_dagster.scoring.metrics import METRICS, compute_metrics_frame, register_metric, spearman

T0 = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)


def rows(model_id, predictions, profits, values=None, subject="BTC"):
    n = len(predictions)
    return pl.DataFrame(
        {
            "model_id": [model_id] * n,
            "input_id": [f"{subject}@{i}" for i in range(n)],
            "round_ts": [T0 + dt.timedelta(minutes=i) for i in range(n)],
            "subject": [subject] * n,
            "prediction_value": [float(p) for p in predictions],
            "profit": [float(p) for p in profits],
            "value": [float(v) for v in (values if values is not None else np.sign(predictions) * np.array(profits))],
        }
    )


def pearson(x, y):
    return float(np.corrcoef(x, y)[0, 1])


def test_spearman_averages_ties():
    # ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 3, 2, 4])) == pytest.approx(pearson([1, 2.5, 2.5, 4], [1, 3, 2, 4]))
    assert spearman(np.array([1, 1, 1]), np.array([1, 2, 3])) is None  # constant side
    assert spearman(np.array([1, 2]), np.array([1, 2])) is None  # too few points


def test_hand_computed_cases():
    frame = rows("m", [1, -1, 2, -0.5], [0.1, 0.3, 0.2, 0.1], values=[0.1, -0.3, 0.2, -0.1])
    assert METRICS["hit_rate"](frame, frame) == pytest.approx(0.5)
    assert METRICS["mean_return"](frame, frame) == pytest.approx((0.1 - 0.3 + 0.2 - 0.1) / 4)
    # cumulative score 0.1, -0.2, 0.0, -0.1 under a peak of 0.1 → worst fall 0.3
    assert METRICS["max_drawdown"](frame, frame) == pytest.approx(-0.3)
    # turnover: |−1−1| + |2+1| + |−0.5−2| over three steps
    assert METRICS["turnover"](frame, frame) == pytest.approx((2 + 3 + 2.5) / 3)


def both_forms(name, frame):
    """The metric's row-wise value, checked equal to its vectorized form."""
    row_wise = METRICS[name](frame, frame)
    [vectorized] = compute_metrics_frame([name], frame, pl.DataFrame({"model_id": ["m"]}))[name].to_list()
    assert vectorized == (None if row_wise is None else pytest.approx(row_wise, rel=1e-12))
    return row_wise


def test_sortino_is_computed_on_the_directional_returns_not_the_scores():
    # Directional returns sign(prediction) × return: +0.02, -0.01, -0.03, 0 (0 abstains).
    # mean = -0.005; downside deviation = sqrt((0.01² + 0.03²) / 2) = sqrt(0.0005).
    # The score values (here in basis points, with a different sign pattern) play no part.
    frame = rows("m", [1, -1, 2, 0], [0.02, 0.01, -0.03, 0.05], values=[900.0, 5.0, 1.0, 7.0])
    assert both_forms("sortino_ratio", frame) == pytest.approx(-0.005 / math.sqrt(0.0005))  # -0.2236


def test_sortino_is_capped_at_ten():
    # Never lost: the downside deviation is 0 and the ratio is capped (it was None before).
    assert both_forms("sortino_ratio", rows("m", [1, -1, 1], [0.01, -0.02, 0.03])) == 10.0
    # A model that only ever lost: mean -0.02, downside deviation 0.02 → -1 (not capped).
    assert both_forms("sortino_ratio", rows("m", [1, 1], [-0.02, -0.02])) == pytest.approx(-1.0)
    # A perfect model with a tiny loss: 0.0102 / 0.0001 = 102 → capped to 10.
    assert both_forms("sortino_ratio", rows("m", [1, 1, 1], [0.0101, 0.0202, -0.0001])) == 10.0
    assert both_forms("sortino_ratio", rows("m", [1], [0.01])) is None  # one round: no ratio


def test_ic_sharpe_of_a_six_round_window_uses_three_chunks_of_two():
    # Six rounds: chunks of max(2, 6 // max(3, 0)) = 2 rounds. Chunk ICs: +1, -1, +1;
    # mean 1/3, population std sqrt(8/9) → 1/3 / sqrt(8/9) = 1 / sqrt(8) = 0.35355.
    frame = rows("m", [1, 2, 2, 1, 1, 2], [0.1, 0.2, 0.1, 0.2, 0.1, 0.2])
    assert both_forms("ic_sharpe", frame) == pytest.approx(1 / math.sqrt(8))


def test_ic_sharpe_is_capped_at_ten_for_a_perfectly_consistent_model():
    # Every chunk IC is exactly 1: std 0. Capped at 10 (it was None before), -10 when every
    # chunk is exactly wrong (the reference returns +10 there, whatever the sign).
    assert both_forms("ic_sharpe", rows("m", [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6])) == 10.0
    assert both_forms("ic_sharpe", rows("m", [6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6])) == -10.0


def test_ic_sharpe_chunks_follow_the_reference_and_drop_a_trailing_partial_chunk():
    assert [metrics.ic_sharpe_chunk_size(n) for n in (4, 6, 25, 60, 120, 125)] == [2, 2, 8, 10, 10, 10]
    # 25 rounds: three chunks of 8, the 25th round is left out. Chunks 1 and 3 are perfectly
    # ranked, chunk 2 reversed: ICs +1, -1, +1 → 1 / sqrt(8) again; the last round (any value)
    # changes nothing.
    preds = list(range(8)) + list(range(8, 0, -1)) + list(range(8)) + [0]
    profits = list(range(8)) * 3 + [99]
    assert both_forms("ic_sharpe", rows("m", preds, profits)) == pytest.approx(1 / math.sqrt(8))
    preds[-1] = 1000
    assert both_forms("ic_sharpe", rows("m", preds, profits)) == pytest.approx(1 / math.sqrt(8))
    assert both_forms("ic_sharpe", rows("m", [1, 2, 3], [1, 2, 3])) is None  # under four rounds
    assert both_forms("ic_sharpe", rows("m", [1, 1, 1, 1], [1, 2, 3, 4])) is None  # abstained: no chunk IC


def test_model_correlation_is_the_mean_over_other_models():
    a = rows("a", [1, 2, 3, 4], [0, 0, 0, 0])
    b = rows("b", [4, 3, 2, 1], [0, 0, 0, 0])
    c = rows("c", [1, 3, 2, 4], [0, 0, 0, 0])
    everything = pl.concat([a, b, c])
    expected = (-1.0 + spearman(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4]))) / 2
    assert METRICS["model_correlation"](a, everything) == pytest.approx(expected)


def random_window(seed, models=5, n=120, missing=False):
    rng = np.random.default_rng(seed)
    profits = rng.normal(0, 0.001, n).round(5)  # rounding creates ties
    frames = []
    for m in range(models):
        preds = (profits * rng.normal(0.2 * m, 1, n) + rng.normal(0, 0.001, n)).round(5)
        frame = rows(f"m{m}", preds, profits)
        if missing and m == 0:
            frame = frame.head(n - 10)
        frames.append(frame)
    return pl.concat(frames)


@pytest.mark.parametrize("missing", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorized_metrics_match_the_row_wise_forms(seed, missing):
    window = random_window(seed, missing=missing)
    names = ["ic", "ic_sharpe", "hit_rate", "mean_return", "max_drawdown", "sortino_ratio", "turnover", "model_correlation"]
    models = sorted(window["model_id"].unique().to_list())
    frame = compute_metrics_frame(names, window, pl.DataFrame({"model_id": models}))
    for row in frame.iter_rows(named=True):
        mine = window.filter(pl.col("model_id") == row["model_id"])
        for name in names:
            expected = METRICS[name](mine, window)
            if expected is None:
                assert row[name] is None, name
            else:
                assert row[name] == pytest.approx(expected, rel=1e-9, abs=1e-12), name


def test_custom_metrics_register_and_run_per_model(monkeypatch):
    monkeypatch.setitem(METRICS, "best_call", lambda model_rows, _all: float(model_rows["value"].max()))
    window = random_window(4, models=3)
    frame = compute_metrics_frame(["best_call", "hit_rate"], window, pl.DataFrame({"model_id": ["m0", "m1", "m2"]}))
    for row in frame.iter_rows(named=True):
        assert row["best_call"] == window.filter(pl.col("model_id") == row["model_id"])["value"].max()


def test_overriding_a_builtin_metric_takes_effect(monkeypatch):
    monkeypatch.setitem(METRICS, "hit_rate", lambda model_rows, _all: 42.0)
    frame = compute_metrics_frame(["hit_rate"], random_window(5, models=2), pl.DataFrame({"model_id": ["m0", "m1"]}))
    assert frame["hit_rate"].to_list() == [42.0, 42.0]


def test_register_metric_decorator_and_unknown_names(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", dict(METRICS))
    register_metric("always_one")(lambda model_rows, _all: 1.0)
    assert "always_one" in metrics.METRICS
    with pytest.raises(KeyError, match="unknown metrics"):
        compute_metrics_frame(["nope"], random_window(6, models=1), pl.DataFrame({"model_id": ["m0"]}))


@pytest.mark.parametrize("seed", range(5))
def test_rank_correlation_means_are_each_rows_nanmean_to_the_bit(seed):
    # Every row's mean over the other models' correlations is formed for all rows at once; it
    # must equal `np.nanmean` of the row alone bit for bit (snapshots are hashed into the
    # checkpoint's Merkle root), constant columns (NaN rows) and all-NaN rows included.
    rng = np.random.default_rng(seed)
    models = int(rng.integers(2, 40))
    ranks = rng.normal(size=(int(rng.integers(3, 80)), models)).argsort(axis=0).astype(float) + 1.0
    ranks[:, rng.integers(0, models)] = 2.0  # a model answering the same every time
    if seed % 2:
        ranks[:, :] = 1.0 if seed == 3 else ranks  # seed 3: every model constant
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(ranks, rowvar=False)
    constant = ranks.std(axis=0) == 0
    corr[:, constant] = np.nan
    corr[constant, :] = np.nan
    np.fill_diagonal(corr, np.nan)
    expected = [None if np.all(np.isnan(row)) else float(np.nanmean(row)) for row in corr]
    assert metrics._rank_correlation_means(ranks) == expected
    assert expected.count(None) >= 1

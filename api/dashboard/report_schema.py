"""`GET /reports/schema`: the dashboard's leaderboard columns and metric widgets, built from the
contract, so the dashboard shows this competition's windows and metrics without hand-edited
configuration.

Columns follow the webapp's `LeaderboardColumn` (types USERNAME, PROJECT, VALUE); widgets its
`Widget` (CHART with a line or bar `nativeConfiguration`), each pointing at one of this API's
chart routes. Ids and orders are stable for a given contract: the dashboard keeps an operator's
overrides by column property and by widget id (or endpoint). Widget ids start at 11: the
dashboard's own default widgets (ids 1–3) would otherwise replace ours by id on a fresh install.
"""

from __future__ import annotations

from typing import Any

from api.dashboard.tournament_widgets import tournament_widgets
from coordinator_dagster.contracts import CrunchContract
from coordinator_dagster.tournament_rounds import is_tournament

SCHEMA_VERSION = "1"
DIVERSITY_METRICS = ("model_correlation", "ensemble_correlation", "contribution", "fnc")
_LABELS = {"ic": "IC", "ic_sharpe": "IC Sharpe", "fnc": "FNC", "net_pnl": "Net PnL", "sortino_ratio": "Sortino"}
_FORMATS = {"hit_rate": "percentage"}


def label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " ").title())


def _hours(hours: int) -> str:
    return f"{hours // 24} days" if hours % 24 == 0 and hours >= 48 else f"{hours} hours"


def leaderboard_columns(contract: CrunchContract) -> list[dict[str, Any]]:
    agg = contract.aggregation
    columns: list[dict[str, Any]] = [
        {"id": 1, "type": "USERNAME", "property": "username", "format": None, "displayName": "Cruncher",
         "tooltip": None, "nativeConfiguration": None, "order": -10},
        {"id": 2, "type": "PROJECT", "property": "model_id", "format": None, "displayName": "Model",
         "tooltip": None, "nativeConfiguration": {"type": "model", "statusProperty": "status"}, "order": 0},
    ]
    for i, (name, hours) in enumerate(agg.windows.items()):
        ranked = " (ranks the leaderboard)" if name == agg.ranking_key else ""
        columns.append(
            {"id": 3 + i, "type": "VALUE", "property": name, "format": "decimal-6", "displayName": label(name),
             "tooltip": f"Mean score over the last {_hours(hours)}{ranked}", "nativeConfiguration": None, "order": (i + 1) * 10}
        )
    first = next(iter(agg.windows.values()))
    for j, name in enumerate(contract.metrics):
        columns.append(
            {"id": 3 + len(agg.windows) + j, "type": "VALUE", "property": name, "format": _FORMATS.get(name, "decimal-4"),
             "displayName": label(name), "tooltip": f"{label(name)}: mean over the snapshots of the last {_hours(first)}",
             "nativeConfiguration": None, "order": 100 + j * 10}
        )
    # The late track, after every ranked column: shown, never ranked or rewarded.
    late = 3 + len(agg.windows) + len(contract.metrics)
    columns += [
        {"id": late, "type": "VALUE", "property": "late_count", "format": None, "displayName": "Late answers",
         "tooltip": "Answers to rounds asked after their cutoff, scored on the late track (not ranked, never rewarded)",
         "nativeConfiguration": None, "order": 1000},
        {"id": late + 1, "type": "VALUE", "property": "late_score_mean", "format": "decimal-6", "displayName": "Late track score",
         "tooltip": "Mean score of the late answers (not ranked, never rewarded)", "nativeConfiguration": None, "order": 1010},
    ]
    return columns


def _line(widget_id: int, name: str, order: int, url: str, series: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "id": widget_id, "type": "CHART", "displayName": name, "tooltip": extra.pop("tooltip", None), "order": order, "endpointUrl": url,
        "nativeConfiguration": {"type": "line", "xAxis": {"name": extra.pop("x", "performed_at")},
                                "yAxis": {"series": series, "format": extra.pop("format", "decimal-4")}, "displayEvolution": False, **extra},
    }


def _bar(widget_id: int, name: str, order: int, url: str, x: str, series: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "id": widget_id, "type": "CHART", "displayName": name, "tooltip": extra.pop("tooltip", None), "order": order, "endpointUrl": url,
        "nativeConfiguration": {"type": "bar", "xAxis": {"name": x}, "yAxis": {"series": series, "format": extra.pop("format", "decimal-4")},
                                "displayEvolution": False, **extra},
    }


_SCOPE_FILTERS = [
    {"type": "select", "label": "Subject", "property": "subject", "autoSelectFirst": True},
    {"type": "select", "label": "Horizon", "property": "horizon", "autoSelectFirst": True},
]


def metrics_widgets(contract: CrunchContract) -> list[dict[str, Any]]:
    if is_tournament(contract):  # rounds on uploads: their own charts (api/dashboard/tournament_widgets.py)
        return tournament_widgets(contract, label)
    windows = [{"name": n, "label": label(n)} for n in contract.aggregation.windows]
    metrics = [{"name": m, "label": label(m)} for m in contract.metrics]
    widgets = [
        _line(11, "Score and metrics per hour", 10, "/reports/models/metrics", [{"name": "value", "label": "Score"}, *metrics],
              tooltip="Per model and hour: the snapshot's mean score and metrics"),
        _line(12, "Rolling score by parameters", 20, "/reports/models/params", windows,
              tooltip="Per model and scope: each window's mean score, hour by hour",
              filterConfig=_SCOPE_FILTERS, groupByProperty="param"),
        _line(13, "Predictions", 30, "/reports/predictions", [{"name": "score_value", "label": "Score"}],
              tooltip="Every scored prediction (capped; see the API's X-Result-Limit header)",
              alertConfig={"reasonField": "score_failed_reason", "field": "score_success"},
              filterConfig=_SCOPE_FILTERS, groupByProperty="param"),
    ]
    if metrics:
        widgets.append(_bar(14, "Multi-Metric Overview", 15, "/reports/models/summary", "model_id", metrics,
                            tooltip="Each model's newest snapshot metrics"))
    diversity = [{"name": m, "label": label(m)} for m in contract.metrics if m in DIVERSITY_METRICS]
    if diversity:
        widgets.append(_bar(15, "Model Diversity", 25, "/reports/diversity", "model_id",
                            [*diversity, {"name": "diversity_score", "label": "Diversity Score"}],
                            tooltip="How differently each model predicts from the others"))
    widgets.append(_bar(16, "Reward History", 40, "/reports/checkpoints/rewards", "period_end",
                        [{"name": "reward_pct", "label": "Reward %"}], format="decimal-2",
                        tooltip="Each model's share of each checkpoint's emission, in percent", groupByProperty="model_name"))
    return sorted(widgets, key=lambda w: w["order"])


def report_schema(contract: CrunchContract) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "leaderboard_columns": leaderboard_columns(contract),
        "metrics_widgets": metrics_widgets(contract),
    }

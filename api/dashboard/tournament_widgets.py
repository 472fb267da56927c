"""The dashboard's widgets for a tournament (rounds on uploaded data), in the webapp's `Widget`
shape that `api.dashboard.report_schema` builds for feed competitions: the score of each model
per round, the predictions of each round by status, and the leaderboard's windows per model.
Ids 31+ keep clear of the feed competitions' widgets (11+) and the dashboard's own (1–3)."""

from __future__ import annotations

from typing import Any

from coordinator_dagster.contracts import CrunchContract


def tournament_widgets(contract: CrunchContract, label: Any) -> list[dict[str, Any]]:
    windows = [{"name": n, "label": label(n)} for n in contract.aggregation.windows]
    statuses = [{"name": s, "label": s.title()} for s in ("SCORED", "PENDING", "FAILED", "ABSENT")]

    def chart(widget_id: int, kind: str, name: str, order: int, url: str, x: str, series: list[dict[str, str]], tooltip: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": widget_id, "type": "CHART", "displayName": name, "tooltip": tooltip, "order": order, "endpointUrl": url,
            "nativeConfiguration": {"type": kind, "xAxis": {"name": x}, "yAxis": {"series": series, "format": extra.pop("format", "decimal-4")},
                                    "displayEvolution": False, **extra},
        }

    return [
        chart(31, "line", "Score per round", 10, "/tournament/rounds/scores", "performed_at", [{"name": "value", "label": "Round score"}],
              "Each model's mean score of each round, by the time the round was scored", groupByProperty="model_id"),
        chart(32, "bar", "Predictions per round", 20, "/tournament/rounds", "round_id", statuses,
              "Each round's predictions by status (FAILED: the model raised or answered no valid price)", format="decimal-0"),
        chart(33, "bar", "Leaderboard windows", 30, "/tournament/leaderboard", "model_id", windows,
              "Each model's mean round score over the leaderboard's windows"),
    ]

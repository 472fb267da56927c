"""Models: the registered models, their all-time summary, the scheduled predictions per scope,
and diversity (how much a model's predictions differ from the others').

`/reports/models` reads the `models` table (the manifest as last synced, with each model's
health as the runner last reported it), built once per change of it (`api.prebuilt`); the summaries read the
current scoring version's snapshots (`/global` through per-model running totals,
`api.dashboard.snapshot_totals`); `params` comes from the contract the API was started with.
"""

from __future__ import annotations

from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from api import sql
from api.dashboard import shapes, snapshot_totals
from api.dashboard.schemas import DashboardDiversity, DashboardModel, DashboardModelGlobal
from api.deps import DbDep, TimeRangeDep
from api.fast_lane import fast
from api.prebuilt import Answer, answer_of, encoder, prebuilt, render
from api.routes.dashboard_charts import ProjectIdsDep
from api.schemas import ScopeParams

router = APIRouter(prefix="/reports/models", tags=["models"])
# The contract's scopes; `GET /reports/models/params` is the dashboard's per-model chart.
contract_router = APIRouter(prefix="/v1/reports/models", tags=["models"])
diversity_router = APIRouter(prefix="/reports/diversity", tags=["models"])

_LEADERBOARD_FIXED = {"rank", "model_id", "model_name", "cruncher", "ranking_key", "ranking_value", "is_ensemble", "prediction_count", "as_of", "date", "hour"}
DIVERSITY_METRICS = ("model_correlation", "ensemble_correlation", "contribution", "fnc")


def _models(db: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    found = sql.rows(db, "SELECT model_id, name, cruncher, cruncher_index, entrypoint, joined_at, active, status FROM models ORDER BY model_id")
    return [
        {
            **{k: v for k, v in row.items() if k != "entrypoint"},
            "model_name": row["name"],
            "cruncher_name": row["cruncher"],
            "cruncher_id": None if row["cruncher_index"] is None else str(row["cruncher_index"]),
            "deployment_id": row["entrypoint"],
        }
        for row in found
    ]


_encode = encoder(list[DashboardModel])


def _build(db: duckdb.DuckDBPyConnection, _: object) -> dict[bool | None, bytes]:
    """The answer for each value of `active` (all, active only, retired only), as JSON bytes."""
    found = _models(db)
    return {flag: render(_encode([m for m in found if flag is None or m["active"] == flag])) for flag in (None, True, False)}


MODELS = Answer("models", ("models",), _build)


async def _model_list(state, active: bool | None = None) -> bytes:
    return (await answer_of(state, MODELS))[active]


@router.get("", response_model=list[DashboardModel], summary="Registered models")
@fast(lambda state, _: _model_list(state))
async def list_models(
    request: Request,
    active: Annotated[bool | None, Query(description="only active (true) or retired (false) models")] = None,
) -> Response:
    return Response(await _model_list(request.app.state, active), media_type="application/json")


def _board_and_names(db: duckdb.DuckDBPyConnection, _: object) -> tuple[dict[str, dict], dict[str, dict]]:
    board = {row["model_id"]: row for row in sql.rows(db, "SELECT * FROM leaderboard")}
    return board, {row["model_id"]: row for row in sql.rows(db, "SELECT model_id, name, cruncher FROM models")}


# Read-only: the rows are shared by every request until the tables change.
BOARD_AND_NAMES = Answer("leaderboard and model names", ("leaderboard", "models"), _board_and_names)


@router.get(
    "/global",
    response_model=list[DashboardModelGlobal],
    summary="Every model's summary over its snapshots (all time, or start to end) and current rank",
)
async def models_global(request: Request, ids: ProjectIdsDep, period: TimeRangeDep) -> Response:
    totals = snapshot_totals.totals(await prebuilt(request, snapshot_totals.SNAPSHOT_SERIES), period, ids)
    board, names = await prebuilt(request, BOARD_AND_NAMES)
    by_model: dict[str, dict[str, Any]] = {row["model_id"]: row for row in totals}
    for model_id in set(board) | set(names):
        by_model.setdefault(
            model_id,
            {"model_id": model_id, "snapshot_count": 0, "prediction_count": 0, "scored_count": 0, "failed_count": 0, "mean_value": None, "first_period": None, "last_period": None},
        )
    agg = request.app.state.contract.aggregation
    answer = []
    for model_id, row in by_model.items():
        if ids is not None and model_id not in ids:
            continue
        entry, named = board.get(model_id, {}), names.get(model_id, {})
        windows = {k: shapes.finite(v) for k, v in entry.items() if k not in _LEADERBOARD_FIXED}
        last_end = row.pop("last_end", None)
        answer.append(
            dict(
                **row,
                model_name=entry.get("model_name") or named.get("name"),
                cruncher=entry.get("cruncher") or named.get("cruncher"),
                rank=entry.get("rank"),
                ranking_value=entry.get("ranking_value"),
                windows=windows,
                **windows,
                performed_at=shapes.chart_time(last_end or entry.get("as_of")),
                score_metrics=windows,
                score_ranking=shapes.ranking(agg.ranking_key, entry.get("ranking_value"), agg.ranking_direction),
            )
        )
    answer.sort(key=lambda m: (m["rank"] is None, m["rank"] or 0, m["model_id"]))
    # Validated and rendered once, as FastAPI would from the response model (the same bytes):
    # building the models here and letting FastAPI validate them again cost as much as the rest.
    return Response(render(_encode_global(answer)), media_type="application/json")


_encode_global = encoder(list[DashboardModelGlobal])


@contract_router.get("/params", response_model=list[ScopeParams], summary="Scheduled predictions per scope, from the contract")
def model_params(request: Request) -> list[ScopeParams]:
    return [
        ScopeParams(
            scope_key=p.scope_key,
            subject=p.scope.subject,
            step_seconds=p.scope.step_seconds,
            horizon_seconds=p.scope.horizon_seconds,
            prediction_interval_seconds=p.prediction_interval_seconds,
            resolve_horizon_seconds=p.resolve_horizon_seconds,
            active=p.active,
        )
        for p in request.app.state.contract.scheduled_predictions
    ]


def guidance(correlation: float | None) -> str:
    if correlation is None:
        return "not enough overlapping predictions with other models to measure diversity yet"
    if correlation >= 0.9:
        return "almost the same predictions as the other models: a near-duplicate adds little to the ensemble and earns less under contribution-weighted emission; try different features or horizons"
    if correlation >= 0.5:
        return "moderately correlated with the other models: there is room to add signal they do not have"
    if correlation >= 0.0:
        return "diverse: the model's predictions differ from the others', which helps the ensemble"
    return "anti-correlated with the other models: diverse, but check that the sign of the predictions is intended"


def _finite(value: Any) -> float | None:
    return None if value is None or value != value or value in (float("inf"), float("-inf")) else float(value)


def _diversity(db: duckdb.DuckDBPyConnection, period, model_id: str | None) -> list[DashboardDiversity]:
    metrics = ", ".join(
        f"avg(CASE WHEN isfinite(TRY_CAST(json_extract_string(result_summary, '$.{m}') AS DOUBLE)) "
        f"THEN TRY_CAST(json_extract_string(result_summary, '$.{m}') AS DOUBLE) END) AS {m}"
        for m in DIVERSITY_METRICS
    )
    where = sql.Where().equals("model_id", model_id).time_range(db, "snapshots", "period_start", period)
    found = sql.rows(db, f"SELECT model_id, count(*) AS snapshot_count, {metrics} FROM snapshots{where.sql} GROUP BY model_id ORDER BY model_id", where.params)
    return [
        DashboardDiversity(
            model_id=row["model_id"],
            snapshot_count=row["snapshot_count"],
            **{m: _finite(row[m]) for m in DIVERSITY_METRICS},
            guidance=guidance(_finite(row["model_correlation"])),
            diversity_score=shapes.diversity_score(row["model_correlation"]),
        )
        for row in found
    ]


@router.get(
    "/{model_id}/diversity",
    response_model=DashboardDiversity,
    summary="A model's diversity metrics with guidance",
    responses={404: {"description": "no such model"}},
)
def model_diversity(
    db: DbDep, period: TimeRangeDep, model_id: Annotated[str, Path(min_length=1, max_length=200)]
) -> DashboardDiversity:
    found = _diversity(db, period, model_id)
    if found:
        return found[0]
    known = sql.scalar(db, "SELECT count(*) FROM models WHERE model_id = ?", [model_id]) or sql.scalar(
        db, "SELECT count(*) FROM leaderboard WHERE model_id = ?", [model_id]
    )
    if not known:
        raise HTTPException(status_code=404, detail=f"no model {model_id!r}; GET /reports/models lists them")
    return DashboardDiversity(
        model_id=model_id, snapshot_count=0, model_correlation=None, ensemble_correlation=None, contribution=None, fnc=None,
        guidance=guidance(None), diversity_score=None,
    )


@diversity_router.get("", response_model=list[DashboardDiversity], summary="Every model's diversity metrics with guidance")
def all_diversity(db: DbDep, period: TimeRangeDep) -> list[DashboardDiversity]:
    return _diversity(db, period, None)

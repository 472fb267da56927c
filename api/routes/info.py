"""`GET /info`: what this node runs (version, contract summary, auth mode, custom routes)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.auth import IsAdmin
from api.routes.models import model_params
from api.schemas import ContractInfo, Info
from coordinator_dagster.partitions import period_label

router = APIRouter(prefix="/info", tags=["health"])


@router.get("", response_model=Info, summary="Node, contract and API configuration")
def info(request: Request, admin: IsAdmin) -> Info:
    app = request.app
    contract, settings = app.state.contract, app.state.settings
    return Info(
        name="coordinator-dagster",
        version=app.version,
        lake=str(app.state.lake.root) if admin else None,
        auth={"admin_key_required": settings.api_key is not None, "read_key_required": settings.api_key is not None and settings.read_auth},
        contract=ContractInfo(
            scopes=model_params(request),
            windows=dict(contract.aggregation.windows),
            ranking_key=contract.aggregation.ranking_key,
            ranking_direction=contract.aggregation.ranking_direction,
            metrics=list(contract.metrics),
            ensembles=[e.name for e in contract.ensembles],
            checkpoint_period=period_label(settings.checkpoint_interval_seconds or contract.checkpoint_period),
            scoring_version=contract.scoring_version,
            crunch_pubkey=contract.crunch_pubkey,
        ),
        custom_routes=list(app.state.custom_routes),
    )

"""`GET /healthz`: the API is up, which lake it reads and how many files each table has."""

from fastapi import APIRouter

from api.auth import IsAdmin
from api.deps import LakeDep
from api.schemas import Health

router = APIRouter(prefix="/healthz", tags=["health"])


@router.get("", response_model=Health, summary="Liveness and lake file counts")
def healthz(lake: LakeDep, admin: IsAdmin) -> Health:
    # Counting files opens nothing, so the probe stays cheap while runs rewrite partitions. The
    # lake's path on disk is the operator's business (api.auth).
    return Health(status="ok", lake=str(lake.root) if admin else None, tables={name: len(lake.files(name)) for name in lake.tables})

"""Auth tiers of the report API (the reference engine's rules).

- `API_KEY` unset: everything is open.
- `API_KEY` set: admin routes (checkpoint writes, backfill, custom routers) need the key, given as
  `X-API-Key`, `Authorization: Bearer <key>` or the `api_key` query parameter.
- `API_READ_AUTH=true` (with a key): the raw-data read routes (predictions, snapshots, data
  downloads) need it too. Leaderboard, models, feeds, checkpoints, health, info and docs stay public.

Keys are compared with `hmac.compare_digest`; a refusal is a 401 that says what was wrong.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from api.settings import ApiSettings

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the node's API_KEY")
_bearer = HTTPBearer(auto_error=False, description="the node's API_KEY as a bearer token")
_query = APIKeyQuery(name="api_key", auto_error=False, description="the node's API_KEY")


def _presented(header: str | None, bearer: HTTPAuthorizationCredentials | None, query: str | None) -> str | None:
    for value in (header, bearer.credentials if bearer else None, query):
        if value:
            return value
    return None


def _check(request: Request, key: str | None, tier: str) -> str:
    """Who is calling, for the audit trail; raises 401 when the tier needs a key and it is wrong."""
    settings: ApiSettings = request.app.state.settings
    host = request.client.host if request.client else "unknown"
    if settings.api_key is None or (tier == "read" and not settings.read_auth):
        return f"anonymous@{host}"
    challenge = {"WWW-Authenticate": 'Bearer realm="coordinator"'}
    if key is None:
        raise HTTPException(
            status_code=401,
            detail=f"this route needs the {tier} API key: send X-API-Key, Authorization: Bearer, or ?api_key=",
            headers=challenge,
        )
    if not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), settings.api_key.get_secret_value().encode()):
        raise HTTPException(status_code=401, detail="the API key is not valid", headers=challenge)
    return f"api-key@{host}"


def require_admin(
    request: Request,
    header: Annotated[str | None, Security(_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    query: Annotated[str | None, Security(_query)] = None,
) -> str:
    return _check(request, _presented(header, bearer, query), "admin")


def require_read(
    request: Request,
    header: Annotated[str | None, Security(_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    query: Annotated[str | None, Security(_query)] = None,
) -> str:
    return _check(request, _presented(header, bearer, query), "read")


AdminCaller = Annotated[str, Depends(require_admin)]
ReadCaller = Annotated[str, Depends(require_read)]

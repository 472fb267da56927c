"""Auth tiers of the report API (the reference engine's rules and variables).

- `API_KEY` unset: everything is open, and every caller counts as the operator.
- `API_KEY` set: admin routes (checkpoint writes, backfill, custom routers) need the key, given as
  `X-API-Key`, `Authorization: Bearer <key>` or the `api_key` query parameter.
- `API_READ_AUTH=true` (with a key): the raw-data read routes (predictions, snapshots, data
  downloads, Merkle proofs, which carry snapshot contents) need it too. Leaderboard, models,
  feeds, checkpoints with their emissions, health, info and docs stay public.

Each route's tier is the one `api.routes.ROUTES` (or a custom router's `AUTH_TIER`) gives it.
`API_PUBLIC_PREFIXES` / `API_ADMIN_PREFIXES` (comma-separated path prefixes, as in the reference)
override that for reads: the longest matching prefix decides, admin winning a tie. Writes (POST,
PUT, PATCH, DELETE) of the node's own routes are always admin; no prefix opens them.

Checkpoint emissions are public, PENDING ones included, where the reference keeps checkpoint
detail admin-only: an emission is a deterministic function of the public leaderboard and the
contract, so hiding it protects nothing, and publishing it before it is submitted on-chain lets
every participant check their share while the operator can still correct it. An operator who
wants the reference's rule sets `API_ADMIN_PREFIXES=/reports/checkpoints/`.

The check runs in `api.middleware.Authenticate`, before routing and body parsing: a request
without the key gets its 401 whatever its body holds. Operator details inside public answers
(the lake's path, the address a checkpoint event came from) are shown to admins only: callers
with the key, or everyone on a node without one. Keys are compared with `hmac.compare_digest`;
a refusal is a 401 that says what was wrong.
"""

from __future__ import annotations

import hmac
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from api.settings import ApiSettings

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the node's API_KEY")
_bearer = HTTPBearer(auto_error=False, description="the node's API_KEY as a bearer token")
_query = APIKeyQuery(name="api_key", auto_error=False, description="the node's API_KEY")


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="coordinator"'}


def needs_key(settings: ApiSettings, tier: str) -> bool:
    return settings.api_key is not None and (tier == "admin" or (tier == "read" and settings.read_auth))


def key_is_valid(settings: ApiSettings, key: str | None) -> bool:
    if settings.api_key is None:
        return True
    return key is not None and hmac.compare_digest(key.encode("utf-8", "surrogateescape"), settings.api_key.get_secret_value().encode())


def refusal(tier: str, key: str | None) -> str:
    if key is None:
        return f"this route needs the {tier} API key: send X-API-Key, Authorization: Bearer, or ?api_key="
    return "the API key is not valid"


def key_from_scope(headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> str | None:
    """The key a raw ASGI request presents, in `_presented`'s order: header, bearer, query."""
    header = bearer = None
    for name, value in headers:
        if name == b"x-api-key" and header is None:
            header = value.decode("latin-1")
        elif name == b"authorization" and bearer is None:
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                bearer = credentials.strip()
    query = None
    if query_string:
        for name, value in urllib.parse.parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            if name == "api_key":
                query = value
                break
    for value in (header, bearer, query):
        if value:
            return value
    return None


@dataclass(frozen=True)
class Tiers:
    """Which tier guards a request: configured prefixes first (reads only), then the route's own."""

    public_prefixes: tuple[str, ...]
    admin_prefixes: tuple[str, ...]
    # (path regex, methods, tier) of every mounted route, in routing order.
    routes: tuple[tuple[re.Pattern[str], frozenset[str], str], ...]

    def _prefix_tier(self, path: str) -> str | None:
        best, tier = -1, None
        for prefixes, name in ((self.public_prefixes, "public"), (self.admin_prefixes, "admin")):
            for prefix in prefixes:
                if path.startswith(prefix) and len(prefix) >= best:
                    best, tier = len(prefix), name
        return tier

    def of(self, method: str, path: str) -> str:
        if method in WRITE_METHODS:
            # Only a route that takes this method can run; anything else is a 404/405 as it is.
            return next((tier for regex, methods, tier in self.routes if method in methods and regex.match(path)), "public")
        prefixed = self._prefix_tier(path)
        if prefixed is not None:
            return prefixed
        return next((tier for regex, methods, tier in self.routes if regex.match(path) and methods & {"GET", "HEAD"}), "public")


def is_admin(request: Request) -> bool:
    """Whether this caller may see operator details (set by `Authenticate` for every request)."""
    return bool(request.scope.get("state", {}).get("is_admin", False))


def public_caller(caller: str | None) -> str | None:
    """A recorded caller without the address it came from: `api-key@10.0.0.5` → `api-key`."""
    return caller.split("@", 1)[0] if caller else caller


def _presented(header: str | None, bearer: HTTPAuthorizationCredentials | None, query: str | None) -> str | None:
    for value in (header, bearer.credentials if bearer else None, query):
        if value:
            return value
    return None


def _check(request: Request, key: str | None, tier: str) -> str:
    """Who is calling, for the audit trail; raises 401 when the tier needs a key and it is wrong."""
    settings: ApiSettings = request.app.state.settings
    host = request.client.host if request.client else "unknown"
    if not needs_key(settings, tier):
        return f"anonymous@{host}"
    if not key_is_valid(settings, key):
        raise HTTPException(status_code=401, detail=refusal(tier, key), headers=CHALLENGE)
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
IsAdmin = Annotated[bool, Depends(is_admin)]

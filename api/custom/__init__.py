"""Operator routers: every `*.py` file here (not starting with `_`) that defines a FastAPI
`router` is mounted at start-up, behind the admin key unless the module sets
`AUTH_TIER = "read"` or `"public"`. `API_ROUTES=module:attr` mounts routers from elsewhere.
"""

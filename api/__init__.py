"""The report API: a FastAPI app that serves the lake's reports (leaderboard, models, predictions,
feeds, snapshots, checkpoints and their emissions, Merkle proofs, raw partitions) to operators,
participants and dashboards, and records the checkpoint lifecycle.

It reads through one shared in-memory DuckDB over the Parquet lake, so it never takes a lock and
keeps answering while Dagster runs rewrite partitions. Its only writes are appended
`checkpoint_events` rows (confirm, status), serialized per checkpoint by the lake's partition
lock. Build the app with `api.app.create_app()`; `coordinator api` serves it with uvicorn.

Layout: `settings` (environment), `auth` (tiers), `deps` (request dependencies), `sql`
(parameterised query building), `prediction_pages` (predictions paging over hour partitions),
`cache` (lake-invalidated answer cache), `middleware` (body limit), `solana` (signature check),
`extensions` (custom routers), `schemas` (request and response models), `routes/` (one router
per report), `custom/` (operator routers), `app` (assembly). See docs/api.md.
"""

"""Asset jobs the sensors and schedules launch: one per stage of the live loop."""

import dagster as dg

ingest_job = dg.define_asset_job("ingest_job", selection=["feed_records"], description="Fetch the current window's feed records.")
predict_job = dg.define_asset_job("predict_job", selection=["inputs", "predictions"], description="Build a window's round inputs and ask every model.")
score_job = dg.define_asset_job(
    "score_job",
    selection=["scores", "snapshots", "leaderboard", "group_leaderboard"],
    description="Score a window, refresh its snapshots and the leaderboards.",
)
checkpoint_job = dg.define_asset_job(
    "checkpoint_job", selection=["checkpoints", "audit_bundle"], description="Build a period's emission checkpoint and its audit bundle."
)

what_if_job = dg.define_asset_job(
    "what_if_job", selection=["what_if_report"], description="Recompute the last checkpoints under a candidate policy (Launchpad config)."
)

default_jobs = [ingest_job, predict_job, score_job, checkpoint_job]
# Not among default_jobs: its asset is built with the node's TTL (build_defs adds both).
retention_job = dg.define_asset_job("retention_job", selection=["feed_retention"], description="Delete feed records past their TTL.")

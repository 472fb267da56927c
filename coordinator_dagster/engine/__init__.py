"""The round engine: the live hot path from "the record closing a round has landed" to "its
predictions are persisted", in a long-lived process instead of a Dagster run.

`round_engine` (the loop: which rounds are due, inputs, model calls, lake writes), `outbox`
(what was written but maybe not yet reported to Dagster, repaired at the next start), `timing`
(per-round stage timestamps and the `/timing-metrics` summary). Nothing here imports Dagster:
reports go through the `Reporter` the CLI binds to its instance.
"""

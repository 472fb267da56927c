"""Live streaming ingestion: `coordinator feeds listen`.

A long-running process beside Dagster that subscribes to the configured feed (ccxt.pro
WebSocket candles, Pyth Hermes server-sent events, or the synthetic source in real time) and
writes closed records into the `feed_records` hour partitions of the lake, with the batch path's
schema, atomic writes and de-duplication, reporting each write to Dagster as a runless asset
event.

Modules: `records` (the record type, closing of forming steps, merge/de-duplication shared with
the batch path), `buffer` (the bounded hand-off between the receiving side and the writer),
`writer` (lake writes and Dagster events), `sources` (one adapter per wire protocol), `listener`
(connection lifecycle, backoff, gap filling through the batch source, the threads), `setup`
(a listener assembled from the node's settings, for the command line).
"""

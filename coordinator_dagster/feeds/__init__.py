"""Feeds: the source clients (synthetic, ccxt, Pyth), record identity and de-duplication, feed
checks, granularity, and the streaming listener. Sources return frames in the `feed_records`
schema; writing them is the lake's job and scheduling them is Dagster's."""

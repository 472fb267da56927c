"""Storage: the Parquet lake read through DuckDB, its table schemas, durable writes, and backup and
restore of a node. It knows tables and files, not competitions: nothing here imports scoring,
feeds or models.

`store.Lake` is the object callers use; it is assembled from `layout` (tables and where their
files live), `writes` (atomic partition writes, events, locks), `reads` (partitions into polars
frames), `views` (DuckDB views and the catalog file) and `reader` (the API's shared connection
with retried reads)."""

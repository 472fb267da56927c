"""Storage: the Parquet lake read through DuckDB, its table schemas, durable writes, and backup and
restore of a node. It knows tables and files, not competitions: nothing here imports scoring,
feeds or models."""

"""SQL over the tick history: named queries, Athena and the local DuckDB engine."""

"""The tick history as hourly Parquet files: where they live, which hours need compacting, and
the DuckDB compaction itself (`engine`, imported only where DuckDB is installed)."""

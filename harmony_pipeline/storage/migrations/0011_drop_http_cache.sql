-- The response cache moved to its own SQLite file (requests-cache, harmony_pipeline/http_cache.py):
-- DuckDB keeps the pipeline's state only.
DROP TABLE IF EXISTS http_cache;

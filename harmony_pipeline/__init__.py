"""Harmony Pipeline: music acquisition and library enrichment as Dagster assets over DuckDB."""

"""Ingest: parsing dropped track lists, the inbox store, backfilling Spotify lookups."""

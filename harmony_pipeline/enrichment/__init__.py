"""Enrichment: tags, artwork, lyrics and credits written into library files."""

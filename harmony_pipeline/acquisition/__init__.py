"""Acquisition: demand, Soulseek searches, downloads, verification and import into the library."""

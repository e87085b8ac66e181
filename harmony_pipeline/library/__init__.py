"""Library: scanning folders, quality, upgrades, tags of imported files, playlist files, path templates."""

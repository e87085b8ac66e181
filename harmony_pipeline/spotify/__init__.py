"""Spotify: ids and references, the response cache over the Spotify API, playlist diffs, liked songs, login."""

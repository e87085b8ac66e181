-- Core tables: activity log, HTTP response cache, Spotify playlists and their tracks.
CREATE SEQUENCE IF NOT EXISTS activity_events_id START 1;
CREATE TABLE activity_events (
    id BIGINT PRIMARY KEY DEFAULT nextval('activity_events_id'),
    time TIMESTAMPTZ NOT NULL,
    type VARCHAR NOT NULL,
    details VARCHAR
);

-- Responses of external services keyed by service + request, so re-runs ask nothing again.
CREATE TABLE http_cache (
    service VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    status INTEGER NOT NULL,
    body VARCHAR,
    fetched_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (service, key)
);

CREATE TABLE spotify_playlists (
    playlist_id VARCHAR PRIMARY KEY,
    name VARCHAR,
    owner_id VARCHAR,
    owner_name VARCHAR,
    collaborative BOOLEAN,
    public BOOLEAN,
    snapshot_id VARCHAR,                   -- as last seen on Spotify
    items_snapshot_id VARCHAR,             -- the snapshot whose items playlist_tracks holds
    track_count INTEGER,
    sync_status VARCHAR NOT NULL,          -- fresh | stale | forbidden | error
    sync_status_reason VARCHAR,
    synced_at TIMESTAMPTZ,                 -- last successful sync
    checked_at TIMESTAMPTZ NOT NULL        -- last attempt
);

CREATE TABLE playlist_tracks (
    playlist_id VARCHAR NOT NULL,
    spotify_track_id VARCHAR NOT NULL,
    position INTEGER,
    isrc VARCHAR,
    title VARCHAR NOT NULL,
    artist VARCHAR NOT NULL,
    artists VARCHAR[],
    album VARCHAR,
    album_id VARCHAR,
    album_artist VARCHAR,
    track_number INTEGER,
    disc_number INTEGER,
    album_total_tracks INTEGER,
    release_date VARCHAR,
    duration_ms INTEGER,
    added_at TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ NOT NULL,
    removed_at TIMESTAMPTZ,                -- set when the track left the playlist; never deleted
    PRIMARY KEY (playlist_id, spotify_track_id)
);

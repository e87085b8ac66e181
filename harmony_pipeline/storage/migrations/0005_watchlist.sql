-- Watchlist: watched artists, every release seen for them, and the tracks of releases to acquire.
CREATE TABLE watchlist_artists (
    artist_id VARCHAR PRIMARY KEY,
    name VARCHAR,
    source VARCHAR NOT NULL,               -- env (HARMONY_WATCHLIST) | cli (`harmony watch add`)
    added_at TIMESTAMPTZ NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,   -- higher is checked first
    paused BOOLEAN NOT NULL DEFAULT false,
    with_discography BOOLEAN NOT NULL DEFAULT false,  -- the first check also acquires the back catalogue
    baseline_at TIMESTAMPTZ,               -- when the existing discography was recorded as known
    last_checked_at TIMESTAMPTZ,
    next_due_at TIMESTAMPTZ,               -- null: due now
    release_count INTEGER,                 -- albums + singles on Spotify at the last check
    error_count INTEGER NOT NULL DEFAULT 0,  -- consecutive failed checks (drives the back-off)
    last_error VARCHAR
);

CREATE TABLE artist_releases (
    artist_id VARCHAR NOT NULL,
    album_id VARCHAR NOT NULL,
    name VARCHAR,
    album_type VARCHAR,                    -- album | single
    release_date VARCHAR,
    release_date_precision VARCHAR,
    total_tracks INTEGER,
    first_seen_at TIMESTAMPTZ NOT NULL,
    is_new BOOLEAN NOT NULL,               -- first seen after the artist's baseline
    acquire BOOLEAN NOT NULL,              -- its tracks become wanted tracks
    tracks_read_at TIMESTAMPTZ,            -- null while the tracks of a release to acquire are not read yet
    PRIMARY KEY (artist_id, album_id)
);

CREATE TABLE artist_release_tracks (
    artist_id VARCHAR NOT NULL,
    spotify_track_id VARCHAR NOT NULL,
    isrc VARCHAR,
    title VARCHAR NOT NULL,
    artist VARCHAR NOT NULL,
    artists VARCHAR[],
    album VARCHAR,
    album_id VARCHAR NOT NULL,
    album_artist VARCHAR,
    track_number INTEGER,
    disc_number INTEGER,
    album_total_tracks INTEGER,
    release_date VARCHAR,
    duration_ms INTEGER,
    acquire BOOLEAN NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (artist_id, spotify_track_id)
);

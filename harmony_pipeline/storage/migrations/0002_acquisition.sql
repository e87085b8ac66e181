-- Acquisition: demand, Soulseek matches, downloads with retries and dead-letters, the library.
CREATE TABLE wanted_tracks (
    wanted_key VARCHAR PRIMARY KEY,        -- isrc:<ISRC> or key:<artist>|<title>|<duration bucket>
    spotify_track_id VARCHAR,
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
    sources VARCHAR[] NOT NULL,            -- e.g. playlist:<id>, free_ingest, watchlist:<artist id>
    state VARCHAR NOT NULL,                -- wanted | in_library | withdrawn
    first_wanted_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Soulseek searches across all runs, for the search budget (SLSKD_SEARCH_LIMIT per window).
CREATE TABLE search_budget (
    searched_at TIMESTAMPTZ NOT NULL,
    query VARCHAR NOT NULL
);

-- Search responses by query text, so a retry never searches again.
CREATE TABLE search_cache (
    query VARCHAR PRIMARY KEY,
    responses VARCHAR NOT NULL,            -- JSON array as slskd returned it
    response_count INTEGER NOT NULL,
    searched_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE soulseek_matches (
    wanted_key VARCHAR PRIMARY KEY,
    status VARCHAR NOT NULL,               -- matched | no_match | deferred
    queries VARCHAR[],
    username VARCHAR,
    filename VARCHAR,
    size BIGINT,
    score DOUBLE,
    reasons VARCHAR[],
    candidates VARCHAR,                    -- JSON: accepted candidates best first, kept for retries
    rejected_count INTEGER,
    rejected_sample VARCHAR,               -- JSON: a few rejected candidates with their reasons
    decided_at TIMESTAMPTZ NOT NULL,
    retry_search_after TIMESTAMPTZ         -- no_match: search again after this time
);

CREATE TABLE downloads (
    wanted_key VARCHAR PRIMARY KEY,
    state VARCHAR NOT NULL,                -- downloading | succeeded | retry | dead_letter | imported
    attempts INTEGER NOT NULL,             -- every attempt counts, the first included
    username VARCHAR,
    filename VARCHAR,
    size BIGINT,
    transfer_id VARCHAR,
    transfer_state VARCHAR,
    local_path VARCHAR,                    -- where slskd wrote the finished file (mapped to this host)
    enqueued_at TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ,
    last_error VARCHAR,
    history VARCHAR NOT NULL,              -- JSON list of attempts: candidate, outcome, error, time
    updated_at TIMESTAMPTZ NOT NULL
);

-- Candidates never to try again (a file that failed the audio check, a hostile name).
CREATE TABLE blocked_candidates (
    username VARCHAR NOT NULL,
    filename VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    blocked_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (username, filename)
);

CREATE TABLE library_tracks (
    wanted_key VARCHAR PRIMARY KEY,
    path VARCHAR NOT NULL,                 -- relative to HARMONY_LIBRARY_DIR
    spotify_track_id VARCHAR,
    isrc VARCHAR,
    title VARCHAR NOT NULL,
    artist VARCHAR NOT NULL,
    album VARCHAR,
    album_id VARCHAR,
    album_artist VARCHAR,
    track_number INTEGER,
    disc_number INTEGER,
    release_date VARCHAR,
    format VARCHAR,
    bitrate INTEGER,
    duration_s DOUBLE,
    sample_rate INTEGER,
    size_bytes BIGINT,
    source VARCHAR,                        -- soulseek:<username>
    source_filename VARCHAR,
    imported_at TIMESTAMPTZ NOT NULL
);

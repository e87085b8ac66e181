-- FREE ingest: submissions (CLI, stdin, inbox), their items deduplicated across submissions, and the
-- Spotify tracks each item resolved to.
CREATE SEQUENCE IF NOT EXISTS free_ingest_submissions_id START 1;
CREATE TABLE free_ingest_submissions (
    id BIGINT PRIMARY KEY DEFAULT nextval('free_ingest_submissions_id'),
    source VARCHAR NOT NULL,               -- file name, 'stdin' or 'inbox:<file name>'
    format VARCHAR NOT NULL,               -- text | csv | json
    submitted_at TIMESTAMPTZ NOT NULL,
    accepted INTEGER NOT NULL,             -- new items
    skipped INTEGER NOT NULL,              -- rejected lines + items already submitted earlier
    rejected VARCHAR NOT NULL,             -- JSON list of {line, reason, raw}
    notes VARCHAR[]                        -- e.g. "decoded as Windows-1252"
);

CREATE TABLE free_ingest_items (
    fingerprint VARCHAR PRIMARY KEY,       -- stable identity from the parser (link, ISRC or names)
    kind VARCHAR NOT NULL,                 -- text | isrc | track | album | playlist | artist
    artist VARCHAR,
    artists VARCHAR[],
    title VARCHAR,
    album VARCHAR,
    year INTEGER,
    duration_ms INTEGER,
    isrc VARCHAR,
    spotify_uri VARCHAR,
    raw VARCHAR NOT NULL,                  -- the line as submitted (shortened)
    line_number INTEGER NOT NULL,
    submission_id BIGINT NOT NULL,         -- the submission it first came from
    state VARCHAR NOT NULL,                -- pending | matched | unmatched | expanded
    reason VARCHAR,                        -- why unmatched (or what it matched by)
    lookups INTEGER NOT NULL DEFAULT 0,    -- backfill attempts
    next_lookup_at TIMESTAMPTZ,            -- unmatched: look up again after this; NULL = never
    submitted_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE backfilled_tracks (
    fingerprint VARCHAR NOT NULL,          -- the free_ingest_items row it came from
    spotify_track_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL,               -- matched
    via VARCHAR NOT NULL,                  -- link | album | playlist | isrc | search
    score DOUBLE,
    reasons VARCHAR[],
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
    resolved_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (fingerprint, spotify_track_id)
);

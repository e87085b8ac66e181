-- Enrichment: tags, artwork and lyrics written into the library files, one row per library track.
CREATE TABLE track_metadata (
    wanted_key VARCHAR PRIMARY KEY,        -- library_tracks.wanted_key
    path VARCHAR NOT NULL,                 -- relative to HARMONY_LIBRARY_DIR
    status VARCHAR NOT NULL,               -- tagged | failed
    reason VARCHAR,
    genres VARCHAR[],
    composers VARCHAR[],
    lyricists VARCHAR[],
    producers VARCHAR[],
    isrc VARCHAR,
    copyright VARCHAR,
    label VARCHAR,
    musicbrainz_recording_id VARCHAR,
    musicbrainz_release_id VARCHAR,
    fields_written VARCHAR[],
    next_attempt_at TIMESTAMPTZ,           -- failed: try again after this time
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE track_artwork (
    wanted_key VARCHAR PRIMARY KEY,
    path VARCHAR NOT NULL,
    album_key VARCHAR NOT NULL,            -- the cache is per album: Spotify album id or artist|album
    status VARCHAR NOT NULL,               -- embedded | kept (existing embed good enough) | missing | failed
    reason VARCHAR,
    source VARCHAR,                        -- coverartarchive | spotify
    url VARCHAR,
    width INTEGER,                         -- measured size of the chosen original
    height INTEGER,
    bytes BIGINT,
    cache_path VARCHAR,                    -- the original under HARMONY_DATA_DIR/artwork
    embedded_width INTEGER,                -- what the file holds now
    embedded_height INTEGER,
    next_attempt_at TIMESTAMPTZ,           -- missing / failed: look again after this time
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE track_lyrics (
    wanted_key VARCHAR PRIMARY KEY,
    path VARCHAR NOT NULL,
    status VARCHAR NOT NULL,               -- synced | plain | instrumental | missing | failed
    reason VARCHAR,
    lrclib_id BIGINT,
    lrc_path VARCHAR,                      -- the .lrc sidecar (synced only), relative to the library
    duration_s DOUBLE,                     -- the file's own length, used for matching
    next_attempt_at TIMESTAMPTZ,           -- missing / failed: ask LRCLIB again after this time
    updated_at TIMESTAMPTZ NOT NULL
);

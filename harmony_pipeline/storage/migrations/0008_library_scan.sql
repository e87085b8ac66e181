-- Audio files found in the library folders (HARMONY_LIBRARY_DIR and the read-only
-- HARMONY_EXTRA_LIBRARY_DIRS) by the `library_scan` asset: what the user already has, identified by
-- its tags (or its file name), so wanted tracks it satisfies never reach Soulseek. The scan only reads:
-- files are never moved, renamed or rewritten. Size + mtime decide whether a file is read again.
CREATE TABLE library_files (
    root VARCHAR NOT NULL,                 -- the library folder (absolute) the file was found in
    path VARCHAR NOT NULL,                 -- relative to root, POSIX separators
    size_bytes BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    format VARCHAR,                        -- from the extension: mp3, flac, m4a…
    duration_s DOUBLE,
    bitrate INTEGER,                       -- kbps
    title VARCHAR,
    artist VARCHAR,
    album VARCHAR,
    isrc VARCHAR,
    spotify_track_id VARCHAR,
    identified_by VARCHAR NOT NULL,        -- tags | filename | none
    error VARCHAR,                         -- unreadable: why (the file is still counted, never adopted)
    scanned_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (root, path)
);

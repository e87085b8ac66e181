-- Quality upgrades (HARMONY_QUALITY with cutoff=…): a library track whose file ranks below the cutoff is
-- searched again at a low priority and, when a better correct file is found, replaced by it (tags, cover
-- and lyrics carried over; the old file removed only once the new one is in place).
CREATE TABLE library_upgrades (
    wanted_key VARCHAR PRIMARY KEY,
    state VARCHAR NOT NULL,                -- downloading | replacing | replaced | no_better | failed
    old_path VARCHAR,                      -- the file being replaced (relative to the library)
    new_path VARCHAR,                      -- replacing: where the better file goes (recorded first)
    username VARCHAR,
    filename VARCHAR,
    size BIGINT,
    local_path VARCHAR,                    -- the finished download
    from_quality VARCHAR,                  -- e.g. "mp3 128 kbps"
    to_quality VARCHAR,
    attempts INTEGER NOT NULL,
    last_error VARCHAR,
    next_check_at TIMESTAMPTZ,             -- no_better / failed / replaced: look again after this
    updated_at TIMESTAMPTZ NOT NULL
);

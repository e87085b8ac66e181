-- Quality upgrades under the execution model of downloads and imports: every transition is conditional
-- on (state, updated_at), a row mid-transition carries the claim of the process doing it, a transfer is
-- matched to the attempt that asked for it, and the old file of a replacement is recorded as to be
-- removed before the new one takes its place (removed by the next run if this one dies first).
ALTER TABLE library_upgrades ADD COLUMN claimed_by VARCHAR;      -- searching | enqueuing | replacing: host:pid:start
ALTER TABLE library_upgrades ADD COLUMN enqueued_at TIMESTAMPTZ; -- when the current attempt was asked of slskd
ALTER TABLE library_upgrades ADD COLUMN remove_path VARCHAR;     -- the replaced file, still to be removed

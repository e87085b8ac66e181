-- Execution model: activity events know the run that recorded them (no writer pool makes steps take
-- turns any more), and download rows carry the claim of the process working on them plus the library
-- path an import intends, so a killed run's half-done work is recognised and finished by the next one.
-- The run of an event lives beside it: DuckDB 1.5 cannot replay an ALTER TABLE of activity_events (its
-- id defaults to a sequence) from the WAL after a crash, and would refuse to open the file.
CREATE TABLE activity_runs (
    event_id BIGINT PRIMARY KEY,          -- activity_events.id
    run_id VARCHAR NOT NULL
);
ALTER TABLE downloads ADD COLUMN claimed_by VARCHAR;      -- host:pid:start of the process mid-transition
ALTER TABLE downloads ADD COLUMN library_path VARCHAR;    -- importing: where the file is being moved
-- A search in progress: the process searching for the track (status `searching`), so an overlapping run
-- does not search it too; a claim whose process died is searched again.
ALTER TABLE soulseek_matches ADD COLUMN claimed_by VARCHAR;

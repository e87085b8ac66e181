-- Audio verification of each finished download (harmony_pipeline/audio_verification.py), one line:
-- "verified: …", "unverified: …" (no key, no ISRC, AcoustID down, …); rejected files never get here.
ALTER TABLE downloads ADD COLUMN verification VARCHAR;

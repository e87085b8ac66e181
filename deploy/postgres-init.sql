-- The pipeline's own tables (HARMONY_DATABASE_URL) in a database beside Dagster's (POSTGRES_DB).
CREATE DATABASE harmony;

-- Run once by the postgres image on an empty data directory (compose.yaml).
-- Per-statement cost for operators: the server preloads the library
-- (compose.yaml's command), this makes its view readable in the database.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

-- Unauthenticated refusals (device auth failures, agent signature failures, SCEP and /enroll refusals,
-- forwarded certificates from untrusted peers), counted per kind, source and time bucket instead of one event
-- row per request (issue 11). Keep in step with migrations/postgres/0010_auth_failures.sql.
CREATE TABLE auth_failures (
    kind     TEXT    NOT NULL,
    source   TEXT    NOT NULL,
    bucket   INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    first_at INTEGER NOT NULL,
    last_at  INTEGER NOT NULL,
    detail   TEXT    NOT NULL,
    PRIMARY KEY (kind, source, bucket)
);
CREATE INDEX auth_failures_last_at ON auth_failures (last_at);
CREATE INDEX auth_failures_bucket ON auth_failures (bucket);

-- Issue 14, several escrowd instances on one database. Keep in step with migrations/sqlite/0015_scaleout.sql.
--
-- A queued command handed to a Mac is claimed until this time (Unix ms): no other /mdm/connect, on this
-- instance or another, hands it out again until the claim lapses or the Mac reports on it. NULL: unclaimed.
-- Only PostgreSQL claims (SQLite serves one instance); the column exists on both so the schemas match.
ALTER TABLE command_queue ADD COLUMN claimed_until BIGINT;

-- One round of a schedule (inventory, identity renewal) claims each device it works on until this time, so
-- two instances running the same schedule never queue or push for the same device in the same round.
CREATE TABLE schedule_claims (
    kind          TEXT    NOT NULL,
    device_id     TEXT    NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    claimed_until BIGINT NOT NULL,
    PRIMARY KEY (kind, device_id)
);

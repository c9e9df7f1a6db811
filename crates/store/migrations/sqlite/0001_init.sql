-- escrowd schema, SQLite dialect. Keep in step with migrations/postgres/0001_init.sql.
-- Times are unix milliseconds (INTEGER); ids are TEXT.

CREATE TABLE device_groups (
    id                       TEXT    NOT NULL PRIMARY KEY,
    name                     TEXT    NOT NULL UNIQUE,
    bootstrap_escrow_enabled BOOLEAN NOT NULL,
    prompt_user_to_allow_bootstrap_token_for_authentication BOOLEAN NOT NULL,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
);

CREATE TABLE enrollments (
    id                     TEXT    NOT NULL PRIMARY KEY,
    device_id              TEXT    NOT NULL,
    channel                TEXT    NOT NULL CHECK (channel IN ('device', 'user')),
    user_id                TEXT,
    user_short_name        TEXT,
    user_long_name         TEXT,
    group_id               TEXT    REFERENCES device_groups (id) ON DELETE SET NULL,
    serial_number          TEXT,
    model                  TEXT,
    model_name             TEXT,
    device_name            TEXT,
    os_version             TEXT,
    build_version          TEXT,
    product_name           TEXT,
    topic                  TEXT,
    push_token             BLOB,
    push_magic             TEXT,
    awaiting_configuration BOOLEAN,
    cert_fingerprint       TEXT,
    enabled                BOOLEAN NOT NULL,
    token_update_count     INTEGER NOT NULL,
    enrolled_at            INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    last_seen_at           INTEGER NOT NULL
);
CREATE UNIQUE INDEX enrollments_cert_fingerprint ON enrollments (cert_fingerprint)
    WHERE cert_fingerprint IS NOT NULL;
CREATE INDEX enrollments_device_id ON enrollments (device_id);
CREATE INDEX enrollments_group_id ON enrollments (group_id);

-- Every sealed secret, whatever it belongs to, so key rotation can walk them all.
CREATE TABLE sealed_secrets (
    owner      TEXT    NOT NULL,
    field      TEXT    NOT NULL,
    key_id     TEXT    NOT NULL,
    blob       BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (owner, field)
);
CREATE INDEX sealed_secrets_key_id ON sealed_secrets (key_id);

-- Metadata of the escrowed Bootstrap Token; the token itself is sealed_secrets(owner = enrollment_id,
-- field = 'bootstrap_token').
CREATE TABLE bootstrap_tokens (
    enrollment_id     TEXT    NOT NULL PRIMARY KEY REFERENCES enrollments (id) ON DELETE CASCADE,
    size              INTEGER NOT NULL,
    digest            TEXT    NOT NULL,
    escrowed_at       INTEGER NOT NULL,
    verified          BOOLEAN NOT NULL,
    last_requested_at INTEGER
);

-- A command is stored once, however many enrollments it is queued for.
CREATE TABLE commands (
    uuid         TEXT    NOT NULL PRIMARY KEY,
    request_type TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    created_at   INTEGER NOT NULL
);

-- Active entries only; AUTOINCREMENT so a deleted tail seq is never reused (history keeps seq for ordering).
CREATE TABLE command_queue (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id TEXT    NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    command_uuid  TEXT    NOT NULL REFERENCES commands (uuid),
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'notnow')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (enrollment_id, command_uuid)
);
CREATE INDEX command_queue_enrollment_seq ON command_queue (enrollment_id, seq);

-- Finished commands, moved out of command_queue in the same transaction as the device's report.
CREATE TABLE command_results (
    enrollment_id TEXT    NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    command_uuid  TEXT    NOT NULL REFERENCES commands (uuid),
    seq           INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('acknowledged', 'error', 'command_format_error')),
    result        BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (enrollment_id, command_uuid)
);
CREATE INDEX command_results_enrollment_seq ON command_results (enrollment_id, seq);

-- Audit trail; never deleted with the enrollment it mentions.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    subject       TEXT    NOT NULL,
    enrollment_id TEXT,
    kind          TEXT    NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN ('success', 'failure', 'refused')),
    detail        TEXT    NOT NULL,
    at            INTEGER NOT NULL
);
CREATE INDEX events_subject_id ON events (subject, id);
CREATE INDEX events_kind_id ON events (kind, id);
CREATE INDEX events_at ON events (at);

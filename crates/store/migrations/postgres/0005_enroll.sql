-- Enrollment tokens, one-time SCEP challenges, and the certificates SCEP issued for them.
-- Keep in step with migrations/sqlite/0005_enroll.sql.

-- Only the SHA-256 of a token is stored (the token is shown once). max_uses NULL = unlimited;
-- expires_at NULL = never.
CREATE TABLE enrollment_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    group_id    TEXT    NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    max_uses    BIGINT,
    uses        BIGINT NOT NULL DEFAULT 0,
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- A challenge minted by one /enroll, usable for one PKCSReq (used_at set atomically).
CREATE TABLE scep_challenges (
    challenge_hash TEXT    NOT NULL PRIMARY KEY,
    token_id       TEXT    REFERENCES enrollment_tokens (id) ON DELETE CASCADE,
    group_id       TEXT    REFERENCES device_groups (id) ON DELETE SET NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX scep_challenges_expires_at ON scep_challenges (expires_at);

-- Every certificate SCEP issued: which group it enrolls into, and (from its first Authenticate on) the
-- one device it may speak for.
CREATE TABLE issued_certificates (
    fingerprint TEXT    NOT NULL PRIMARY KEY,
    device_id   TEXT,
    group_id    TEXT    REFERENCES device_groups (id) ON DELETE SET NULL,
    token_id    TEXT,
    issued_at   BIGINT NOT NULL
);

-- The Mac agent (issue 6): registrations, one-time registration secrets (hash only) and remote actions whose
-- credentials are HPKE-sealed to the agent (ciphertext set NULL when the action ends or expires).
-- Keep in step with the other backend's 0007_agent.sql.
CREATE TABLE agent_registrations (
    agent_id      TEXT    NOT NULL PRIMARY KEY,
    device_id     TEXT    NOT NULL UNIQUE REFERENCES enrollments (id) ON DELETE CASCADE,
    signing_key   BYTEA    NOT NULL,
    hpke_key      BYTEA    NOT NULL,
    registered_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);
CREATE TABLE agent_secrets (
    secret_hash TEXT    NOT NULL PRIMARY KEY,
    device_id   TEXT    NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX agent_secrets_device ON agent_secrets (device_id);
CREATE TABLE agent_nonces (
    agent_id TEXT    NOT NULL,
    nonce    TEXT    NOT NULL,
    seen_at  BIGINT NOT NULL,
    PRIMARY KEY (agent_id, nonce)
);
CREATE INDEX agent_nonces_seen_at ON agent_nonces (seen_at);
CREATE TABLE agent_actions (
    id         TEXT    NOT NULL PRIMARY KEY,
    device_id  TEXT    NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    params     TEXT    NOT NULL,
    sealed     BYTEA,
    status     TEXT    NOT NULL CHECK (status IN ('queued', 'delivered', 'succeeded', 'failed', 'cancelled', 'expired')),
    reason     TEXT,
    output     TEXT,
    created_by TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX agent_actions_device ON agent_actions (device_id, created_at);

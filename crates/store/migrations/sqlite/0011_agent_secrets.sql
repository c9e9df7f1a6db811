-- Agent registration hardening and secrets inside commands (issue 11). Keep in step with
-- migrations/postgres/0011_agent_secrets.sql.
--
-- A command that carries a secret (EraseDevice PIN, the agent's registration secret, a password) keeps only a
-- redacted payload in `commands`; the real one is sealed in sealed_secrets (owner 'command:<uuid>', field
-- 'command_payload') and deleted once no enrollment still has the command queued.
ALTER TABLE commands ADD COLUMN carries_secret BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX command_queue_command ON command_queue (command_uuid);

-- Registration secrets: the expiry clock starts when the Mac acknowledges the InstallProfile carrying the
-- secret (expires_at = delivered_at + ttl_ms; NULL until delivered); a newer install revokes older unused
-- secrets; replace_authorized_by names the admin who allowed this secret to replace a registered agent.
-- SQLite cannot drop NOT NULL from expires_at, so the table is rebuilt; existing secrets count as delivered
-- when they were created, so they keep the expiry they had.
CREATE TABLE agent_secrets_0011 (
    secret_hash           TEXT    NOT NULL PRIMARY KEY,
    device_id             TEXT    NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    command_uuid          TEXT,
    created_at            INTEGER NOT NULL,
    ttl_ms                INTEGER NOT NULL,
    delivered_at          INTEGER,
    expires_at            INTEGER,
    used_at               INTEGER,
    revoked_at            INTEGER,
    replace_authorized_by TEXT
);
INSERT INTO agent_secrets_0011 (secret_hash, device_id, command_uuid, created_at, ttl_ms, delivered_at, expires_at,
                                used_at, revoked_at, replace_authorized_by)
    SELECT secret_hash, device_id, NULL, created_at, expires_at - created_at, created_at, expires_at, used_at, NULL,
           NULL
    FROM agent_secrets;
DROP TABLE agent_secrets;
ALTER TABLE agent_secrets_0011 RENAME TO agent_secrets;
CREATE INDEX agent_secrets_device ON agent_secrets (device_id);
CREATE INDEX agent_secrets_command ON agent_secrets (command_uuid);

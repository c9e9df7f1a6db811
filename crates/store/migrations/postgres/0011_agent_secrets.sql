-- Agent registration hardening and secrets inside commands (issue 11). Keep in step with
-- migrations/sqlite/0011_agent_secrets.sql.
--
-- A command that carries a secret (EraseDevice PIN, the agent's registration secret, a password) keeps only a
-- redacted payload in `commands`; the real one is sealed in sealed_secrets (owner 'command:<uuid>', field
-- 'command_payload') and deleted once no enrollment still has the command queued.
ALTER TABLE commands ADD COLUMN carries_secret BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX command_queue_command ON command_queue (command_uuid);

-- Registration secrets: the expiry clock starts when the Mac acknowledges the InstallProfile carrying the
-- secret (expires_at = delivered_at + ttl_ms; NULL until delivered); a newer install revokes older unused
-- secrets; replace_authorized_by names the admin who allowed this secret to replace a registered agent.
-- Existing secrets count as delivered when they were created, so they keep the expiry they had.
ALTER TABLE agent_secrets ALTER COLUMN expires_at DROP NOT NULL;
ALTER TABLE agent_secrets ADD COLUMN command_uuid TEXT;
ALTER TABLE agent_secrets ADD COLUMN ttl_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_secrets ADD COLUMN delivered_at BIGINT;
ALTER TABLE agent_secrets ADD COLUMN revoked_at BIGINT;
ALTER TABLE agent_secrets ADD COLUMN replace_authorized_by TEXT;
UPDATE agent_secrets SET ttl_ms = expires_at - created_at, delivered_at = created_at;
ALTER TABLE agent_secrets ALTER COLUMN ttl_ms DROP DEFAULT;
CREATE INDEX agent_secrets_command ON agent_secrets (command_uuid);

-- The agent marks the ADE managed admin (escrow-agent run --managed-admin NAME) on its user rows, so diagnosis
-- can say when the management account lacks a Secure Token. NULL: the source did not say (MDM rows, older
-- agents). Keep in step with migrations/sqlite/0008_managed_admin.sql.
ALTER TABLE device_users ADD COLUMN managed_admin BOOLEAN;

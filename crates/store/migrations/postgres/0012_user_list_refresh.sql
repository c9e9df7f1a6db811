-- Issue 12, one Users table: when escrowd last re-asked a device's UserList after a change to its users (an
-- agent action, a SetBootstrapToken, a user-channel TokenUpdate), so it asks at most once per few minutes.
-- Keep in step with migrations/sqlite/0012_user_list_refresh.sql.
CREATE TABLE user_list_refresh (
    device_id    TEXT   NOT NULL PRIMARY KEY REFERENCES enrollments (id) ON DELETE CASCADE,
    requested_at BIGINT NOT NULL
);

-- The agent's rows were keyed by short name and MDM's by UserGUID, so one user had two keys. Agent rows now
-- use the GUID too (the agent reports dscl's GeneratedUID, MDM's UserGUID); give the rows stored before that
-- the key of MDM's row for the same short name.
UPDATE device_users SET user_key = (
    SELECT m.user_key FROM device_users m
    WHERE m.device_id = device_users.device_id AND m.source = 'mdm' AND m.short_name = device_users.short_name
    ORDER BY m.user_key LIMIT 1
)
WHERE source = 'agent' AND guid IS NULL AND EXISTS (
    SELECT 1 FROM device_users m
    WHERE m.device_id = device_users.device_id AND m.source = 'mdm' AND m.short_name = device_users.short_name
);

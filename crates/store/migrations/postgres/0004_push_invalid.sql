-- APNs said an enrollment's push token is no longer valid (BadDeviceToken, Unregistered, DeviceTokenNotForTopic):
-- pushes skip it until the next TokenUpdate clears the mark. Keep in step with migrations/sqlite/0004_push_invalid.sql.
ALTER TABLE enrollments ADD COLUMN push_invalid_at BIGINT;
ALTER TABLE enrollments ADD COLUMN push_invalid_reason TEXT;

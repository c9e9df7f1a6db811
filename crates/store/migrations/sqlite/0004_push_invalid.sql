-- APNs said an enrollment's push token is no longer valid (BadDeviceToken, Unregistered, DeviceTokenNotForTopic):
-- pushes skip it until the next TokenUpdate clears the mark. Keep in step with migrations/postgres/0004_push_invalid.sql.
ALTER TABLE enrollments ADD COLUMN push_invalid_at INTEGER;
ALTER TABLE enrollments ADD COLUMN push_invalid_reason TEXT;

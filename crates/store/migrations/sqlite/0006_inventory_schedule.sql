-- Automatic inventory: when escrowd last asked each device for its inventory (SecurityInfo, UserList,
-- DeviceInformation). The schedule re-asks the oldest first. Keep in step with
-- migrations/postgres/0006_inventory_schedule.sql.
CREATE TABLE inventory_schedule (
    device_id    TEXT    NOT NULL PRIMARY KEY REFERENCES enrollments (id) ON DELETE CASCADE,
    requested_at INTEGER NOT NULL
);
CREATE INDEX inventory_schedule_requested_at ON inventory_schedule (requested_at);

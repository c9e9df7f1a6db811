-- Admin API: API keys, latest device inventory and per-user facts. PostgreSQL dialect; keep in step with
-- migrations/sqlite/0002_admin.sql.

-- Admin API keys. Only the SHA-256 of a 256-bit random key is stored; the key itself is shown once.
CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    scope        TEXT    NOT NULL CHECK (scope IN ('read', 'operate', 'admin')),
    key_hash     TEXT    NOT NULL UNIQUE,
    created_at   BIGINT  NOT NULL,
    revoked_at   BIGINT
);

-- The latest inventory of a device enrollment: DeviceInformation columns (device_info_at) and SecurityInfo
-- columns (security_info_at), each group written when its command result arrives.
CREATE TABLE device_inventory (
    device_id                        TEXT    NOT NULL PRIMARY KEY REFERENCES enrollments (id) ON DELETE CASCADE,
    os_version                       TEXT,
    os_version_num                   BIGINT,
    build_version                    TEXT,
    model                            TEXT,
    model_name                       TEXT,
    product_name                     TEXT,
    serial_number                    TEXT,
    device_name                      TEXT,
    is_apple_silicon                 BOOLEAN,
    is_supervised                    BOOLEAN,
    eacs_preflight                   TEXT,
    device_info_at                   BIGINT,
    filevault_enabled                BOOLEAN,
    bt_allowed_for_authentication    TEXT,
    bt_required_for_software_update  BOOLEAN,
    bt_required_for_kext_approval    BOOLEAN,
    enrolled_via_dep                 BOOLEAN,
    user_approved_enrollment         BOOLEAN,
    is_user_enrollment               BOOLEAN,
    security_info_at                 BIGINT
);
CREATE INDEX device_inventory_os_version_num ON device_inventory (os_version_num);

-- Facts about the local users of a device, one row per (device, source, user). source 'mdm' = UserList;
-- 'agent' rows (admin, FileVault, volume owner) come later from the agent.
CREATE TABLE device_users (
    device_id         TEXT    NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    source            TEXT    NOT NULL CHECK (source IN ('mdm', 'agent')),
    user_key          TEXT    NOT NULL,
    short_name        TEXT,
    full_name         TEXT,
    uid               BIGINT,
    guid              TEXT,
    has_secure_token  BOOLEAN,
    mobile_account    BOOLEAN,
    is_logged_in      BOOLEAN,
    is_admin          BOOLEAN,
    filevault_enabled BOOLEAN,
    volume_owner      BOOLEAN,
    observed_at       BIGINT  NOT NULL,
    PRIMARY KEY (device_id, source, user_key)
);

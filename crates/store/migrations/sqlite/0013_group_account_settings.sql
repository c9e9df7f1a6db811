-- Issue 12: a group's managed local admin for zero-touch (ADE) setup. When an ADE Mac of the group checks in
-- with AwaitingConfiguration true, escrowd sends AccountConfiguration built from this row (the admin's
-- password is generated per Mac and sealed in sealed_secrets, never stored here). primary_account is
-- 'admin' | 'standard' | 'skip' (Setup Assistant's primary account). Deleted with its group.
-- Keep in step with migrations/postgres/0013_group_account_settings.sql.
CREATE TABLE group_account_settings (
    group_id                                TEXT    NOT NULL PRIMARY KEY REFERENCES device_groups (id) ON DELETE CASCADE,
    admin_short_name                        TEXT    NOT NULL,
    admin_full_name                         TEXT    NOT NULL,
    admin_hidden                            BOOLEAN NOT NULL,
    primary_account                         TEXT    NOT NULL,
    dont_auto_populate_primary_account_info BOOLEAN NOT NULL,
    lock_primary_account_info               BOOLEAN NOT NULL,
    primary_account_full_name               TEXT,
    primary_account_user_name               TEXT,
    updated_at                              INTEGER  NOT NULL
);

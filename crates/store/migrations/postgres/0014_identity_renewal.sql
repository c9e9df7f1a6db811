-- Identity renewal (issue 11). Keep in step with migrations/sqlite/0014_identity_renewal.sql.
--
-- One row per Mac for which escrowd queued a renewal profile (the enrollment profile again, with a one-time
-- SCEP challenge minted for that UDID). Outstanding while its challenge is unexpired; the proven renewal
-- (Authenticate with the certificate that challenge got) deletes it.
CREATE TABLE identity_renewals (
    device_id            TEXT    NOT NULL PRIMARY KEY REFERENCES enrollments (id) ON DELETE CASCADE,
    command_uuid         TEXT    NOT NULL,
    queued_at            BIGINT NOT NULL,
    challenge_expires_at BIGINT NOT NULL,
    renews_not_after     BIGINT
);
-- The renewal schedule looks for Macs whose bound certificate expires soon.
CREATE INDEX enrollments_cert_not_after ON enrollments (cert_not_after) WHERE cert_not_after IS NOT NULL;

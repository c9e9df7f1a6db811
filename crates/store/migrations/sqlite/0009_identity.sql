-- Identity continuity (issue 11). Keep in step with migrations/postgres/0009_identity.sql.
--
-- A certificate that claims a UDID bound to another, still-enrolled certificate without proof is a *pending*
-- identity: its own enrollment row (id '<UDID>/pending/<fingerprint prefix>', '/' never occurs in a UDID) with
-- pending_for = the UDID it claims. It has its own push token, queue and Bootstrap Token, never the Mac's.
ALTER TABLE enrollments ADD COLUMN pending_for TEXT;
CREATE INDEX enrollments_pending_for ON enrollments (pending_for) WHERE pending_for IS NOT NULL;
-- Set on the device row while a pending identity claims it (so the bound certificate's next check-in refuses
-- the pending one without a lookup on every check-in). Written only by the pending-identity statements.
ALTER TABLE enrollments ADD COLUMN has_pending BOOLEAN NOT NULL DEFAULT FALSE;
-- An admin's block: the Mac's certificates are refused at check-in and SCEP renewal while set.
ALTER TABLE enrollments ADD COLUMN blocked_at INTEGER;
-- notAfter of the bound identity certificate (Unix ms), for expiry reporting and renewal.
ALTER TABLE enrollments ADD COLUMN cert_not_after INTEGER;
-- How a certificate was bound to its device at issuance, when it was: 'renewal_req' (SCEP RenewalReq signed
-- by the Mac's bound certificate) or 'renewal_profile' (a challenge escrowd minted for that UDID). NULL: bound
-- at its first Authenticate, which proves nothing about a UDID another certificate holds.
ALTER TABLE issued_certificates ADD COLUMN proof TEXT;
-- A one-time challenge minted for one UDID (identity renewal): its certificate is bound to that UDID at issuance.
ALTER TABLE scep_challenges ADD COLUMN device_id TEXT;

-- SCEP replay protection: every senderNonce accepted in a PKIOperation, kept for a while (see Store docs).
-- Keep in step with migrations/sqlite/0003_scep.sql.
CREATE TABLE scep_nonces (
    nonce          TEXT   NOT NULL PRIMARY KEY,
    transaction_id TEXT   NOT NULL,
    seen_at        BIGINT NOT NULL
);
CREATE INDEX scep_nonces_seen_at ON scep_nonces (seen_at);

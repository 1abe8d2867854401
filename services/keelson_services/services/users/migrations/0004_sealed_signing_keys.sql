-- Signing keys encrypted at rest (signing_keys.py): the private key sealed with AES-256-GCM under
-- the key-encryption key from the service's Secret, identified by `kek_id` (a fingerprint of it).
-- Rows written before keep their PEM until start-up seals them.
ALTER TABLE signing_keys
    ADD COLUMN private_key_sealed bytea,
    ADD COLUMN kek_id text,
    ALTER COLUMN private_key_pem DROP NOT NULL,
    ADD CONSTRAINT signing_keys_private_key_kept CHECK (private_key_pem IS NOT NULL OR private_key_sealed IS NOT NULL);

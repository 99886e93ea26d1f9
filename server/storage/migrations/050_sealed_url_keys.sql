-- Issue 10: URL keys are stored sealed (AES-256-GCM) with a key derived from the server's key file (kyotaku serve
-- --key-file), never in plain text. key_sealed is "v1:" + hex(nonce ‖ ciphertext ‖ tag), the row's version bound as
-- associated data. key_hex held the plain key before; the server seals such rows on its first start and empties
-- key_hex (secrets.hpp).
ALTER TABLE url_keys ADD COLUMN key_sealed TEXT;

-- An API key may require a client certificate (mutual TLS): the SHA-256 of the one certificate
-- it may be used with, as 64 lowercase hex digits; NULL: no certificate needed.
ALTER TABLE api_keys ADD COLUMN client_cert_sha256 TEXT
    CHECK (client_cert_sha256 IS NULL
           OR (length(client_cert_sha256) = 64 AND client_cert_sha256 NOT GLOB '*[^0-9a-f]*'));

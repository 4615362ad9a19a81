-- Client logins: which external identity (an OpenID Connect issuer and subject, or a
-- Telegram user) logs in as which client. The same identity always logs in as the same
-- client; a login never attaches itself to a client found by phone or e-mail.

CREATE TABLE cons.client_identities (
    issuer     text NOT NULL,   -- the OIDC issuer exactly as configured, or 'telegram'
    subject    text NOT NULL,   -- the OIDC `sub`, or the Telegram user id
    -- Deferred, so that one statement can claim the identity first and create the client
    -- only when the claim won: a lost race then leaves no orphan client behind.
    client_id  uuid NOT NULL REFERENCES cons.clients (client_id) DEFERRABLE INITIALLY DEFERRED,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX client_identities_client_id_idx ON cons.client_identities (client_id);

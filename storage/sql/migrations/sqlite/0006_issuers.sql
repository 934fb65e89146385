-- Trusted issuers of the JWT bearer authorization grant (RFC 7523 §2.1),
-- registered with `authserver issuers add`. Everything but the issuer
-- identifier is one JSON object (keys, subjects, scopes): no query selects
-- on it.
CREATE TABLE issuers (
    id         TEXT NOT NULL PRIMARY KEY,
    settings   TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

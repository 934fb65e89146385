-- Trusted issuers of the JWT bearer authorization grant (RFC 7523 §2.1),
-- registered with `authserver issuers add`. Everything but the issuer
-- identifier is one JSON object (keys, subjects, scopes): no query selects
-- on it.
CREATE TABLE issuers (
    id         text COLLATE "C" NOT NULL PRIMARY KEY,
    settings   text             NOT NULL,
    created_at timestamptz      NOT NULL
);

-- Initial schema (SQLite).
--
-- Times are INTEGER Unix microseconds in UTC. Booleans are INTEGER 0/1.
-- String lists are JSON arrays in TEXT columns.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    email         TEXT    NOT NULL, -- as given
    email_lower   TEXT    NOT NULL, -- lower-cased by the application; unique
    name          TEXT    NOT NULL,
    roles         TEXT    NOT NULL,
    disabled      INTEGER NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_email_lower ON users (email_lower);

CREATE TABLE clients (
    id            TEXT    NOT NULL PRIMARY KEY,
    secret_hashes TEXT    NOT NULL,
    is_public     INTEGER NOT NULL,
    grant_types   TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,
    introspect    INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    kind         TEXT    NOT NULL,
    signature    TEXT    NOT NULL,
    request_id   TEXT    NOT NULL,
    client_id    TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    active       INTEGER NOT NULL,
    requested_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    payload      BLOB    NOT NULL,
    PRIMARY KEY (kind, signature)
) STRICT;
CREATE INDEX tokens_request_id ON tokens (request_id);
CREATE INDEX tokens_subject    ON tokens (subject);
CREATE INDEX tokens_client_id  ON tokens (client_id);
CREATE INDEX tokens_expires_at ON tokens (expires_at);

-- The signing key set: one row, replaced as a whole by UpdateKeys.
CREATE TABLE keyset (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    keys    TEXT    NOT NULL -- JSON array of storage.SigningKey
) STRICT;
INSERT INTO keyset (id, version, keys) VALUES (1, 0, '[]');

CREATE TABLE attempts (
    throttle_key TEXT    NOT NULL PRIMARY KEY,
    failures     INTEGER NOT NULL,
    last_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX attempts_last_at ON attempts (last_at);

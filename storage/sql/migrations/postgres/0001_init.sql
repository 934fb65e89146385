-- Initial schema (PostgreSQL).
--
-- Times are timestamptz (microsecond precision). String lists are JSON arrays
-- in text columns, read and written only by the application. Key columns use
-- the "C" collation: byte order, as in Go and SQLite, and cheaper comparisons.

CREATE TABLE users (
    id            text COLLATE "C" NOT NULL PRIMARY KEY,
    email         text             NOT NULL, -- as given
    email_lower   text COLLATE "C" NOT NULL, -- lower-cased by the application; unique
    name          text             NOT NULL,
    roles         text             NOT NULL,
    disabled      boolean          NOT NULL,
    password_hash text             NOT NULL,
    created_at    timestamptz      NOT NULL,
    updated_at    timestamptz      NOT NULL
);
CREATE UNIQUE INDEX users_email_lower ON users (email_lower);

CREATE TABLE clients (
    id            text COLLATE "C" NOT NULL PRIMARY KEY,
    secret_hashes text             NOT NULL,
    is_public     boolean          NOT NULL,
    grant_types   text             NOT NULL,
    scopes        text             NOT NULL,
    introspect    boolean          NOT NULL,
    name          text             NOT NULL,
    created_at    timestamptz      NOT NULL,
    updated_at    timestamptz      NOT NULL
);

CREATE TABLE tokens (
    kind          text COLLATE "C" NOT NULL,
    signature     text COLLATE "C" NOT NULL,
    request_id    text COLLATE "C" NOT NULL,
    client_id     text COLLATE "C" NOT NULL,
    subject       text COLLATE "C" NOT NULL,
    active        boolean          NOT NULL,
    requested_at  timestamptz      NOT NULL,
    expires_at    timestamptz      NOT NULL,
    payload       bytea            NOT NULL,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX tokens_request_id ON tokens (request_id);
CREATE INDEX tokens_subject    ON tokens (subject);
CREATE INDEX tokens_client_id  ON tokens (client_id);
CREATE INDEX tokens_expires_at ON tokens (expires_at);

-- The signing key set: one row, replaced as a whole by UpdateKeys.
CREATE TABLE keyset (
    id            integer          NOT NULL PRIMARY KEY CHECK (id = 1),
    version       bigint           NOT NULL,
    keys          text             NOT NULL -- JSON array of storage.SigningKey
);
INSERT INTO keyset (id, version, keys) VALUES (1, 0, '[]');

CREATE TABLE attempts (
    throttle_key  text COLLATE "C" NOT NULL PRIMARY KEY,
    failures      integer          NOT NULL,
    last_at       timestamptz      NOT NULL
);
CREATE INDEX attempts_last_at ON attempts (last_at);

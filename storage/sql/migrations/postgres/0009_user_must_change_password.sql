-- Password reset that forces a change (issue #19): the user must choose a new
-- password at the next sign-in. Numbered 0009: 0006-0008 are reserved for
-- parallel branches.
ALTER TABLE users ADD COLUMN must_change_password boolean NOT NULL DEFAULT false;
-- ListUsersPage searches by email prefix as a range in byte order, whatever
-- the database's collation; the unique index of 0001 uses that collation, so
-- it cannot serve the range.
CREATE INDEX users_email_lower_bytes ON users (email_lower COLLATE "C");

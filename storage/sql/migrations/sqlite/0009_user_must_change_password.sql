-- Password reset that forces a change (issue #19): the user must choose a new
-- password at the next sign-in. Numbered 0009: 0006-0008 are reserved for
-- parallel branches.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
-- email_lower's unique index (0001) already serves prefix ranges in byte
-- order (BINARY collation), for ListUsersPage.

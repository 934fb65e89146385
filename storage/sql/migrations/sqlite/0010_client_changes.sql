-- The client change feed: one row for every update or deletion of a client,
-- written by triggers in the same transaction as the change. Instances poll
-- it (seq > cursor) to drop the client registrations they cache; garbage
-- collection deletes rows older than storage.ClientChangeRetention.
CREATE TABLE client_changes (
    seq        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    client_id  TEXT    NOT NULL,
    changed_at INTEGER NOT NULL -- Unix microseconds, as elsewhere
) STRICT;
CREATE INDEX client_changes_changed_at ON client_changes (changed_at);

CREATE TRIGGER clients_change_on_update AFTER UPDATE ON clients
BEGIN
    INSERT INTO client_changes (client_id, changed_at)
    VALUES (OLD.id, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;

CREATE TRIGGER clients_change_on_delete AFTER DELETE ON clients
BEGIN
    INSERT INTO client_changes (client_id, changed_at)
    VALUES (OLD.id, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;

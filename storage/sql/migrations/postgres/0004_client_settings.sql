-- Registration fields of the authorization code flow (redirect URIs, resource
-- indicators, consent and PAR policy), as one JSON object: fields that no
-- query selects on, so that new ones need no migration.
ALTER TABLE clients ADD COLUMN settings text NOT NULL DEFAULT '{}';

-- Callback-rule state behind the htable wa_callback (kamailio.cfg): Kamailio's htable table
-- layout and version row. The launcher creates the database from this file when missing:
--   sqlite3 /var/lib/wa-voice/callback.sqlite < kamailio/callback-state.sql
CREATE TABLE version (
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);
INSERT INTO version (table_name, table_version) VALUES ('wa_callback', 2);

CREATE TABLE wa_callback (
    id INTEGER PRIMARY KEY NOT NULL,
    key_name VARCHAR(256) DEFAULT '' NOT NULL,
    key_type INTEGER DEFAULT 0 NOT NULL,
    value_type INTEGER DEFAULT 0 NOT NULL,
    key_value VARCHAR(4096) DEFAULT '' NOT NULL,
    expires INTEGER DEFAULT 0
);
-- The routing writes one pair's row per change, found by name (routing/wa/callback-state.ts).
CREATE UNIQUE INDEX wa_callback_key_name_idx ON wa_callback (key_name);

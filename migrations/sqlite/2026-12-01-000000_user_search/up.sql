-- Substring search over username / email / first and last name without a full scan: an FTS5
-- index with the trigram tokenizer (case-insensitive), kept by triggers, holding no copy of the
-- text (external content on the users table). The LIKE filter still decides each match; the
-- index only narrows the candidates, for search strings of 3 characters or more.
-- The index is keyed by the users table's implicit rowid: after a VACUUM (which may renumber
-- rowids) run `INSERT INTO users_search(users_search) VALUES ('rebuild');`.
CREATE VIRTUAL TABLE users_search USING fts5(
    username, email, first_name, last_name,
    content = 'users', content_rowid = 'rowid', tokenize = 'trigram'
);
INSERT INTO users_search(users_search) VALUES ('rebuild');

CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_search(rowid, username, email, first_name, last_name)
    VALUES (new.rowid, new.username, new.email, new.first_name, new.last_name);
END;
CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_search(users_search, rowid, username, email, first_name, last_name)
    VALUES ('delete', old.rowid, old.username, old.email, old.first_name, old.last_name);
END;
CREATE TRIGGER users_search_update AFTER UPDATE OF username, email, first_name, last_name ON users BEGIN
    INSERT INTO users_search(users_search, rowid, username, email, first_name, last_name)
    VALUES ('delete', old.rowid, old.username, old.email, old.first_name, old.last_name);
    INSERT INTO users_search(rowid, username, email, first_name, last_name)
    VALUES (new.rowid, new.username, new.email, new.first_name, new.last_name);
END;

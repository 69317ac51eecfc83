-- Garrison embedded schema, version 2: the long-term store's portable semantic index.
-- One row per embedded text of an item (field_name = the path, `path.i` for lists);
-- embedding = L2-normalised float32, little-endian. LangGraph's own `store` table is created
-- later by its store's setup; the foreign key is only checked on writes, which come after.
-- ON DELETE CASCADE drops an item's vectors wherever the item goes: delete, TTL sweep, and
-- the REPLACE of a re-put (the store then writes the new value's vectors).

CREATE TABLE garrison_store_vectors (
    prefix     TEXT NOT NULL,
    key        TEXT NOT NULL,
    field_name TEXT NOT NULL,
    embedding  BLOB NOT NULL,
    PRIMARY KEY (prefix, key, field_name),
    FOREIGN KEY (prefix, key) REFERENCES store (prefix, key) ON DELETE CASCADE
);

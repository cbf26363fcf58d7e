-- A world's own choice of who wakes it by visiting (NULL: the server's).
ALTER TABLE instances ADD COLUMN wake_on_visit TEXT
    CHECK (wake_on_visit IN ('owner', 'anyone', 'off'));

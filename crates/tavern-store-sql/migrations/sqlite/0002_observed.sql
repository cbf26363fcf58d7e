-- What the reconciler last saw of each world, and its sealed admin key.
ALTER TABLE instances ADD COLUMN state_reason TEXT;
ALTER TABLE instances ADD COLUMN players INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN world TEXT;
ALTER TABLE instances ADD COLUMN foundry_version TEXT;
ALTER TABLE instances ADD COLUMN admin_key_sealed BLOB;

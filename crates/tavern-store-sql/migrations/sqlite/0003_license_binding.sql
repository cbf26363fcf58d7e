-- Which world a license key runs now. One key, one world: the column holds
-- at most one instance, and the unique index lets an instance hold at most
-- one key. Bindings change only by compare-and-set in a transaction.
ALTER TABLE licenses ADD COLUMN bound_instance_id TEXT REFERENCES instances (id);
CREATE UNIQUE INDEX licenses_bound_instance ON licenses (bound_instance_id)
    WHERE bound_instance_id IS NOT NULL;

-- Only broadcasts are looked up by source (progress, cancel); a scenario step's
-- deliveries are found through their friend (a stopped run's pending ones). A step that
-- many friends reach at once wrote an entry here for each of them all the same: a
-- fifth of the cost of writing its deliveries.
DROP INDEX deliveries_source;
CREATE INDEX deliveries_source ON deliveries (source, source_id) WHERE source = 'broadcast';

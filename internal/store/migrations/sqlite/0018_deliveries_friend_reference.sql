-- PostgreSQL drops deliveries' reference to friends here (see its 0018). SQLite keeps
-- it: dropping a constraint means rebuilding the table, and its check is a cheap
-- in-process lookup.
SELECT 1;

-- SQLite counts a broadcast's friends that are not LINE users through a partial index
-- (see the SQLite migration); PostgreSQL counts them within each page's statement and
-- needs none. This file keeps the migration numbers of both engines in step.
SELECT 1;

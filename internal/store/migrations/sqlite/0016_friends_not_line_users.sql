-- Friends whose ID is not a LINE user ID (imported by hand: LINE would refuse a whole
-- multicast naming one). A broadcast's pages pass over them and count them afterwards;
-- this index holds only them, so the count reads nothing else. The expression is
-- delivery.validUserID's, word for word: SQLite uses a partial index only for a query
-- that repeats its condition.
CREATE INDEX friends_not_line_user ON friends (channel_id, id)
    WHERE NOT (length(line_user_id) = 33 AND substr(line_user_id, 1, 1) = 'U' AND ltrim(substr(line_user_id, 2), '0123456789abcdef') = '');

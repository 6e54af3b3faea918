-- The friend reference cost PostgreSQL a trigger call, a query and a row lock per
-- delivery written: about a third of writing a broadcast's deliveries (100,000 in pages
-- of 500: 0.93-1.36 s with it, 0.51-0.81 s without). Friends are only ever deleted with
-- their channel, so a delivery could only lose its friend to a channel removed while
-- deliveries are being written. The channel row now prevents that: whoever writes
-- deliveries holds a share lock on it (a batch's reference to its channel takes one;
-- a delivery written without a batch takes one explicitly, delivery.lockChannels), and
-- channel.Remove locks it for update, then deletes the channel's deliveries itself.
-- A future way of deleting a single friend must delete their deliveries the same way.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_friend_id_fkey;

-- A step that ends a run changes its state; enrollments_channel had the state in its key,
-- so each such move also moved an index entry (most of the move's cost when many friends
-- finish a scenario at once). Only the scenario census read it, and it now finds a
-- channel's runs through its scenarios and the (scenario_id, friend_id) key.
DROP INDEX enrollments_channel;

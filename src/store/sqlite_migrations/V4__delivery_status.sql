-- How far our own messages got: 1 sent (the server has it), 2 delivered, 3 read, 4 played.
-- NULL for messages of other people and for ours whose fate nobody has reported yet.
ALTER TABLE messages ADD COLUMN delivery INTEGER;

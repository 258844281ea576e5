-- Looking a message up by its id alone (a model often has only the id from an earlier result).
CREATE INDEX messages_by_id ON messages (id);

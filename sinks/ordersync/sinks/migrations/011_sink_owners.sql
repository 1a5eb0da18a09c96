-- One sink writes per consumer name: each sink that starts takes the next generation, and every batch
-- transaction checks it still holds the newest (FOR UPDATE: batches of two sinks never interleave). A
-- sink that lost its place (a zombie after a pause, a network split) stops before writing anything.
CREATE TABLE sink_owners (
    consumer   text   PRIMARY KEY,
    generation bigint NOT NULL
);

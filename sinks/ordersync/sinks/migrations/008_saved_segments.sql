-- Segments a marketer saved from the web app's builder, by name, for the web app and
-- `ordersync segment --saved NAME`. The document is the segment language of docs/segments.md;
-- list_id NULL means every list.
CREATE TABLE saved_segments (
    segment_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    list_id    text,
    document   jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

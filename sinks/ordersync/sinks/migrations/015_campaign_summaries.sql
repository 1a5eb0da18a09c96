-- Campaign results kept as summaries (docs/campaigns.md "How the figures stay current"): computing them
-- from raw events and orders on each view took 18.7 s on 5,210,000 events (bench/web.py). The sink marks
-- what a batch changes, in the batch's transaction: campaigns (reach, credited revenue) and recipients
-- (revenue in the window after their send). A refresher recomputes what is marked
-- (segmentation/campaigns.refresh), and the Campaigns page and report read the summaries.

-- The window after a send whose orders count towards incremental revenue in the summaries; the sink
-- marks a recipient when one of its orders changes inside it.
CREATE FUNCTION campaign_kept_window() RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT interval '5 days' $$;

-- Campaigns to refresh: their credited revenue always; their reach after new events; every recipient's
-- window revenue when marked so (from scratch), else only the recipients marked below. Each marked
-- recipient's campaign is marked too.
CREATE TABLE campaign_stale (
    list_id         text    NOT NULL,
    campaign_id     text    NOT NULL,
    reach           boolean NOT NULL,
    every_recipient boolean NOT NULL,
    PRIMARY KEY (list_id, campaign_id)
);

CREATE TABLE campaign_stale_recipients (
    list_id     text NOT NULL,
    campaign_id text NOT NULL,
    contact_id  uuid NOT NULL,
    PRIMARY KEY (list_id, campaign_id, contact_id)
);

-- One row per campaign: its name, first send and distinct contacts per kind of event.
CREATE TABLE campaign_reach (
    list_id      text        NOT NULL,
    campaign_id  text        NOT NULL,
    name         text,
    first_send   timestamptz,
    recipients   integer     NOT NULL,
    holdout      integer     NOT NULL,
    openers      integer     NOT NULL,
    clickers     integer     NOT NULL,
    unsubscribed integer     NOT NULL,
    computed_at  timestamptz NOT NULL,
    PRIMARY KEY (list_id, campaign_id)
);

-- The credited orders that count (not deleted, not cancelled), per currency.
CREATE TABLE campaign_attributed (
    list_id     text           NOT NULL,
    campaign_id text           NOT NULL,
    currency    text           NOT NULL,
    orders      integer        NOT NULL,
    buyers      integer        NOT NULL,
    revenue     numeric(20, 6) NOT NULL,
    PRIMARY KEY (list_id, campaign_id, currency)
);

-- Per recipient with orders in the kept window after its (first) send, and currency: its group and
-- that revenue. A changed order recomputes its contact's rows, then its campaigns' sums below.
CREATE TABLE campaign_recipient_revenue (
    list_id     text           NOT NULL,
    campaign_id text           NOT NULL,
    contact_id  uuid           NOT NULL,
    currency    text           NOT NULL,
    holdout     boolean        NOT NULL,
    revenue     numeric(20, 6) NOT NULL,
    PRIMARY KEY (list_id, campaign_id, contact_id, currency)
);

-- Per group (sent or holdout) and currency: the sum and the sum of squares of each recipient's revenue
-- in the kept window after its send.
CREATE TABLE campaign_window (
    list_id     text    NOT NULL,
    campaign_id text    NOT NULL,
    holdout     boolean NOT NULL,
    currency    text    NOT NULL,
    revenue     numeric NOT NULL,
    squares     numeric NOT NULL,
    PRIMARY KEY (list_id, campaign_id, holdout, currency)
);

-- Attributed revenue per day after the first send (day 0: the send's UTC day), for the page's chart.
CREATE TABLE campaign_days (
    list_id     text           NOT NULL,
    campaign_id text           NOT NULL,
    currency    text           NOT NULL,
    day         smallint       NOT NULL,
    revenue     numeric(20, 6) NOT NULL,
    PRIMARY KEY (list_id, campaign_id, currency, day)
);

INSERT INTO campaign_stale SELECT DISTINCT list_id, campaign_id, true, true FROM campaign_events;

-- Client addresses banned for failing authentication again and again. The server keeps them in
-- memory and re-reads this table every second, so `rampart ban lift` takes effect at once.
CREATE TABLE ip_bans (
    ip          TEXT PRIMARY KEY,
    until       INTEGER NOT NULL,
    strikes     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

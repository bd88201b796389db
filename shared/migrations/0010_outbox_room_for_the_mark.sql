-- The relay marks each row published once, soon after it is written. published_at is indexed,
-- so the mark can never be a HOT update; but when the new row version lands on the same page
-- as the old one, PostgreSQL logs only the bytes that differ (the stamps) instead of the whole
-- version (an event is about 1.4 kB). Full pages (the default fill factor, 100) sent every
-- mark's new version to another page: the mark wrote as much WAL as the insert. Half-full
-- pages leave room for the new versions of the rows a relay batch marks together.
ALTER TABLE outbox SET (fillfactor = 50);

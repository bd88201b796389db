-- A delivery's id was random (gen_random_uuid, version 4): each queued delivery touched a
-- random leaf of the deliveries' and the attempts' primary keys, and after every checkpoint
-- the first change to a leaf writes the whole page into the WAL. Ids the platform makes are
-- time-ordered (UUIDv7, RFC 9562, as shared.events.envelope.new_event_id makes event ids), so
-- those keys grow at their right edge. (PostgreSQL 18 has uuidv7(); 15 has not.)
CREATE FUNCTION time_ordered_uuid() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    -- A random (version 4) uuid, its first 48 bits replaced by the Unix time in milliseconds
    -- and its version bits 0100 made 0111 (set_bit numbers bits from the right of each byte).
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

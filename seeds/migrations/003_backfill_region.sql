-- seeds/migrations/003_backfill_region.sql: fills journals.region (001) from the
-- organisation's home state, for the journals that have none.
--
--     psql -X -v ON_ERROR_STOP=1 -f seeds/migrations/003_backfill_region.sql
--
-- Safe to rerun at any time: it only touches rows whose region is NULL, so a rerun after
-- the cutover fills in the journals that arrived by replication (from blue, which has no
-- region) in the meantime, and never overwrites a region the application set. It works in
-- batches of 5,000 journal ids, each committed on its own, so no long transaction holds
-- row locks and an interrupted run keeps what it did. Run it with psql in autocommit mode
-- (not with -1 / --single-transaction, nor inside BEGIN: the COMMITs would fail).
-- UPDATE of region does not fire the periods_sync_totals triggers (those on journals
-- watch period_id only), so the BAS totals are untouched.

\set ON_ERROR_STOP 1

DO $$
DECLARE
    batch    constant bigint := 5000;
    next_id  bigint;
    last_id  bigint;
    updated  bigint;
    total    bigint := 0;
BEGIN
    SELECT min(id), max(id) INTO next_id, last_id FROM public.journals WHERE region IS NULL;
    WHILE next_id <= last_id LOOP
        UPDATE public.journals j
           SET region = o.state
          FROM public.organisations o
         WHERE o.id = j.organisation_id
           AND j.id >= next_id AND j.id < next_id + batch
           AND j.region IS NULL;
        GET DIAGNOSTICS updated = ROW_COUNT;
        total := total + updated;
        COMMIT;
        next_id := next_id + batch;
    END LOOP;
    RAISE NOTICE 'region backfilled on % journal(s)', total;
END
$$;

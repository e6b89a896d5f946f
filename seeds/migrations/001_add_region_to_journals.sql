-- seeds/migrations/001_add_region_to_journals.sql: journals get a nullable `region`, the
-- state or territory a journal's business was done in, with an index for reports by region.
--
--     psql -X -v ON_ERROR_STOP=1 -f seeds/migrations/001_add_region_to_journals.sql
--
-- Backward compatible: an additive nullable column without a default (a catalog-only
-- change, no table rewrite), so the application version before it, which neither writes
-- nor reads region, keeps working; rows that arrive by logical replication from a
-- publisher without the column get NULL. 003 backfills it. Idempotent: a second run
-- changes nothing.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;      -- no "already exists, skipping" notices on a rerun

-- The CHECK comes with the column, so it exists exactly when the column does; NULL passes.
ALTER TABLE public.journals
    ADD COLUMN IF NOT EXISTS region text
        CONSTRAINT journals_region_check CHECK (region IN ('NSW', 'VIC', 'QLD', 'WA', 'SA', 'TAS', 'ACT', 'NT'));

-- Not CONCURRENTLY: it runs on green before the application reaches it (and a failed
-- CONCURRENTLY build would leave an invalid index that IF NOT EXISTS then skips).
CREATE INDEX IF NOT EXISTS journals_region_idx ON public.journals (organisation_id, region, journal_date);

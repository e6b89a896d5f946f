-- seeds/seed_small.sql: the BAS accounting schema and a small, deterministic data set:
-- 4 organisations (2 quarterly, 2 monthly GST reporters), July 2022 to June 2026, about
-- 41,000 ledger lines. Loads in a few seconds (bulk mode, as seed_spike.sql describes).
--
--     psql -v ON_ERROR_STOP=1 -f seeds/seed_small.sql
--
-- Against an empty or an already-seeded database: the schema part is idempotent, and the
-- data is loaded in one transaction only when none of these organisations exists (a second
-- run changes nothing). It can share a database with seed_spike.sql (other ABNs).
-- seeds/schema.sql describes the tables; seeds/generate_ledger.sql the data.

\set ON_ERROR_STOP 1
\set QUIET on
SET client_min_messages = warning;      -- no "already exists, skipping" notices on a rerun
\ir schema.sql

-- The generator's temporary tables stay in memory. temp_buffers cannot change once the
-- session has used a temporary table (e.g. psql -f seed_small.sql -f seed_spike.sql): then
-- the setting stays as it is.
DO $$
BEGIN
    PERFORM set_config('temp_buffers', '64MB', false);
EXCEPTION WHEN invalid_parameter_value OR cant_change_runtime_param THEN
    NULL;
END
$$;
SET work_mem = '64MB';

BEGIN;

-- The organisations (fictitious; the ABNs pass the ABN checksum). weight scales their
-- journal volume.
CREATE TEMP TABLE seed_org (
    ordinal int, abn text, name text, state text, gst_frequency text, weight int
) ON COMMIT DROP;
INSERT INTO seed_org VALUES
    (1, '14100200301', 'Harbourside Coffee Roasters Pty Ltd', 'NSW', 'quarterly', 1),
    (2, '37200311452', 'Yarra Valley Joinery Pty Ltd',        'VIC', 'monthly',   2),
    (3, '39300422563', 'Sunshine Coast Physio Pty Ltd',       'QLD', 'quarterly', 1),
    (4, '41400533674', 'Fremantle Marine Supplies Pty Ltd',   'WA',  'monthly',   1);

SELECT NOT EXISTS (SELECT 1 FROM public.organisations o JOIN seed_org s ON s.abn = o.abn) AS seed_needed \gset
\if :seed_needed
    \set jpm 55
    \set spike 3
    \set tail_pct 50
    \set bulk true
    \echo 'seed_small: loading 4 organisations'
    \ir generate_ledger.sql
\else
    \echo 'seed_small: its organisations are already there: no data loaded'
\endif

COMMIT;

ANALYZE public.organisations, public.accounts, public.tax_codes, public.bas_periods,
        public.bas_gate_states, public.bas_gate_history, public.journals, public.ledger_lines,
        public.periods_sync_totals;

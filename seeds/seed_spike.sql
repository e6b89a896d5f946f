-- seeds/seed_spike.sql: the BAS accounting schema and an end-of-quarter spike: 12
-- organisations, July 2022 to June 2026, about 1.44 million ledger lines, of which the
-- current period (April-June 2026 for quarterly reporters, June 2026 for monthly ones,
-- the end of the financial year) holds far more than any other, most of it in its last
-- 10 days. Loads in well under 60 seconds on 2 cores.
--
--     psql -v ON_ERROR_STOP=1 -f seeds/seed_spike.sql
--
-- Against an empty or an already-seeded database: the schema part is idempotent, and the
-- data is loaded in one transaction only when none of these organisations exists (a second
-- run changes nothing). It can share a database with seed_small.sql (other ABNs).
--
-- For speed (bulk mode, seeds/generate_ledger.sql) the load runs with the periods_sync_totals
-- triggers disabled (ALTER TABLE ... DISABLE TRIGGER, inside the transaction), computes the
-- totals of its periods in one INSERT ... SELECT from the ledger (the recomputation of
-- seeds/validate.sql, i.e. what the triggers would give), and enables the triggers again
-- before it commits; the foreign keys of journals and ledger_lines are dropped for the load
-- and added back, as they were, after it (checking every row in one join per key).

\set ON_ERROR_STOP 1
\set QUIET on
SET client_min_messages = warning;      -- no "already exists, skipping" notices on a rerun
\ir schema.sql

-- The generator's temporary tables stay in memory. temp_buffers cannot change once the
-- session has used a temporary table (e.g. psql -f seed_small.sql -f seed_spike.sql): then
-- the setting stays as it is.
DO $$
BEGIN
    PERFORM set_config('temp_buffers', '512MB', false);
EXCEPTION WHEN invalid_parameter_value OR cant_change_runtime_param THEN
    NULL;
END
$$;
SET work_mem = '256MB';
SET maintenance_work_mem = '256MB';

BEGIN;

-- The organisations (fictitious; the ABNs pass the ABN checksum). weight scales their
-- journal volume.
CREATE TEMP TABLE seed_org (
    ordinal int, abn text, name text, state text, gst_frequency text, weight int
) ON COMMIT DROP;
INSERT INTO seed_org VALUES
    ( 1, '15513701919', 'Southern Cross Freight Pty Ltd',      'NSW', 'monthly',   3),
    ( 2, '85527402838', 'Bayside Dental Group Pty Ltd',        'VIC', 'quarterly', 1),
    ( 3, '42541103757', 'Top End Tours Pty Ltd',               'NT',  'quarterly', 1),
    ( 4, '29554804676', 'Adelaide Hills Wines Pty Ltd',        'SA',  'monthly',   2),
    ( 5, '10568505595', 'Hobart Harbour Chandlery Pty Ltd',    'TAS', 'quarterly', 1),
    ( 6, '33582206514', 'Capital Region Electrical Pty Ltd',   'ACT', 'monthly',   2),
    ( 7, '20595907433', 'Pilbara Earthmoving Pty Ltd',         'WA',  'monthly',   3),
    ( 8, '48609608352', 'Gold Coast Surf Supplies Pty Ltd',    'QLD', 'quarterly', 2),
    ( 9, '94623309271', 'Newcastle Steel Fabrication Pty Ltd', 'NSW', 'monthly',   2),
    (10, '16637010190', 'Geelong Bakehouse Pty Ltd',           'VIC', 'quarterly', 1),
    (11, '50650711109', 'Townsville Solar Installers Pty Ltd', 'QLD', 'monthly',   1),
    (12, '31664412028', 'Launceston Bookbinders Pty Ltd',      'TAS', 'quarterly', 1);

SELECT NOT EXISTS (SELECT 1 FROM public.organisations o JOIN seed_org s ON s.abn = o.abn) AS seed_needed \gset
\if :seed_needed
    \set jpm 380
    \set spike 12
    \set tail_pct 70
    \set bulk true
    \echo 'seed_spike: loading 12 organisations'
    \ir generate_ledger.sql
\else
    \echo 'seed_spike: its organisations are already there: no data loaded'
\endif

COMMIT;

ANALYZE public.organisations, public.accounts, public.tax_codes, public.bas_periods,
        public.bas_gate_states, public.bas_gate_history, public.journals, public.ledger_lines,
        public.periods_sync_totals;

-- seeds/validate.sql: the ledger's invariants, checked against the database. Each check is
-- a query that must return no rows; the first that returns rows stops the script with an
-- error naming the check and showing up to 10 of them.
--
--     psql -X -v ON_ERROR_STOP=1 -f seeds/validate.sql       (exit status 3 on a failure)
--
-- seeds/migration_smoke.sh runs it after its traffic. The same queries, as checks of
-- deploy/examples/plan.toml, run during pgflip's validation window. The recomputation
-- query below is the reference for periods_sync_totals: it derives G1, 1A, 1B, W1, W2 and
-- the counts from the ledger by the rules in seeds/schema.sql, independently of the
-- triggers that maintain them.

\set ON_ERROR_STOP 1

-- Runs `query`; raises an error naming `check_name` when it returns rows, else returns 'ok'.
CREATE OR REPLACE FUNCTION pg_temp.expect_no_rows(check_name text, query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n      bigint;
    sample text;
BEGIN
    EXECUTE format('SELECT count(*), string_agg(r::text, E''\n'') FILTER (WHERE rn <= 10)
                      FROM (SELECT q AS r, row_number() OVER () AS rn FROM (%s) AS q) AS numbered', query)
       INTO n, sample;
    IF n > 0 THEN
        RAISE EXCEPTION 'ledger invariant failed: %: % row(s), for example:%', check_name, n, E'\n' || sample;
    END IF;
    RETURN 'ok: ' || check_name;
END
$$;

-- 1. Double entry: every journal's lines sum to zero (journals whose lines do not).
SELECT pg_temp.expect_no_rows('every journal balances', $q$
    SELECT journal_id, sum(amount_cents) AS imbalance_cents
      FROM public.ledger_lines
     GROUP BY journal_id
    HAVING sum(amount_cents) <> 0
$q$) AS "check";

-- 2. periods_sync_totals equals its recomputation from the ledger, for every period (a
--    period without a totals row counts as all zeros). Rows: the periods that differ, with
--    the recomputed and the stored values.
SELECT pg_temp.expect_no_rows('periods_sync_totals equals the recomputation from the ledger', $q$
    WITH line_totals AS (
        SELECT j.period_id,
               sum(CASE WHEN a.type = 'revenue' AND l.tax_code IN ('GST', 'FRE', 'INP', 'EXP')
                        THEN -(l.amount_cents + round(l.amount_cents * t.rate_bp / 10000.0)) ELSE 0 END) AS g1,
               sum(CASE WHEN a.type = 'revenue' AND l.tax_code = 'GST'
                        THEN -round(l.amount_cents * t.rate_bp / 10000.0) ELSE 0 END) AS gst_1a,
               sum(CASE WHEN a.type IN ('expense', 'asset') AND l.tax_code IN ('GST', 'CAP')
                        THEN round(l.amount_cents * t.rate_bp / 10000.0) ELSE 0 END) AS gst_1b,
               sum(CASE WHEN a.bas_role = 'wages' AND l.amount_cents > 0
                        THEN l.amount_cents ELSE 0 END) AS w1,
               sum(CASE WHEN a.bas_role = 'payg_withholding' AND l.amount_cents < 0
                        THEN -l.amount_cents ELSE 0 END) AS w2,
               count(*) AS line_count
          FROM public.journals j
          JOIN public.ledger_lines l ON l.journal_id = j.id
          JOIN public.accounts a ON a.id = l.account_id
          JOIN public.tax_codes t ON t.code = l.tax_code
         GROUP BY j.period_id
    ), journal_totals AS (
        SELECT period_id, count(*) AS journal_count FROM public.journals GROUP BY period_id
    ), recomputed AS (
        SELECT p.id AS period_id,
               coalesce(lt.g1, 0) AS g1, coalesce(lt.gst_1a, 0) AS gst_1a, coalesce(lt.gst_1b, 0) AS gst_1b,
               coalesce(lt.w1, 0) AS w1, coalesce(lt.w2, 0) AS w2,
               coalesce(lt.line_count, 0) AS line_count, coalesce(jt.journal_count, 0) AS journal_count
          FROM public.bas_periods p
          LEFT JOIN line_totals lt ON lt.period_id = p.id
          LEFT JOIN journal_totals jt ON jt.period_id = p.id
    )
    SELECT r.*, s.g1_total_sales_cents, s.gst_on_sales_1a_cents, s.gst_on_purchases_1b_cents,
           s.w1_gross_wages_cents, s.w2_withheld_cents, s.line_count AS stored_line_count,
           s.journal_count AS stored_journal_count
      FROM recomputed r
      LEFT JOIN public.periods_sync_totals s ON s.period_id = r.period_id
     WHERE (r.g1, r.gst_1a, r.gst_1b, r.w1, r.w2, r.line_count, r.journal_count)
           IS DISTINCT FROM
           (coalesce(s.g1_total_sales_cents, 0), coalesce(s.gst_on_sales_1a_cents, 0),
            coalesce(s.gst_on_purchases_1b_cents, 0), coalesce(s.w1_gross_wages_cents, 0),
            coalesce(s.w2_withheld_cents, 0), coalesce(s.line_count, 0), coalesce(s.journal_count, 0))
$q$) AS "check";

-- 3. Every period has a gate state, and it is where its latest history transition led.
SELECT pg_temp.expect_no_rows('every period''s gate state is its latest transition', $q$
    SELECT p.id AS period_id, g.state, h.to_state AS latest_transition
      FROM public.bas_periods p
      LEFT JOIN public.bas_gate_states g ON g.period_id = p.id
      LEFT JOIN LATERAL (SELECT to_state FROM public.bas_gate_history
                          WHERE period_id = p.id ORDER BY changed_at DESC, id DESC LIMIT 1) h ON true
     WHERE g.state IS DISTINCT FROM h.to_state OR g.state IS NULL
$q$) AS "check";

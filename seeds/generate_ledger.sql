-- seeds/generate_ledger.sql: the data generator shared by seed_small.sql and seed_spike.sql.
-- Not run on its own: a seed file includes it (`\ir generate_ledger.sql`) inside its
-- transaction, once it has found its organisations absent, after filling the temporary
-- table seed_org and setting these psql variables:
--
--   jpm       journals per month of an organisation of weight 1 in an ordinary period
--   spike     how many times an ordinary period's journals the current period gets
--   tail_pct  the share (%) of the current period's journals dated in its last 10 days
--   bulk      true (both seeds): disable the triggers that maintain periods_sync_totals
--             for the load, compute the totals in one statement after it (the values the
--             triggers would give: the recomputation of seeds/validate.sql), and enable
--             them again; also drop the foreign keys of journals and ledger_lines for the
--             load and add them back after it (which checks every row again).
--             false: load through the triggers and the row-by-row foreign key checks. It
--             gives the same rows and totals, but is slow: within one transaction every
--             update of a period's totals row makes its row version chain longer.
--
-- The data stands as at 30 June 2026, the end of FY2025-26. Each organisation gets its BAS
-- periods from 1 July 2022 (FY2022-23) to June 2026 (quarterly or monthly); the last one is
-- the current period (gate open), the one before it is in review or locked, all earlier
-- ones are lodged. Journals are deterministic: every "random" choice is a hash of the
-- organisation, the period and the journal's number (hashint8extended), so a load gives
-- the same rows every time (ids depend only on what the database already held).

-- No concurrent writes to the ledger while the ids are reserved and the lines loaded.
LOCK TABLE public.journals, public.ledger_lines IN SHARE ROW EXCLUSIVE MODE;

-- A deterministic pseudo-random number in [0, m) for key k; salt tells the uses apart.
CREATE OR REPLACE FUNCTION pg_temp.rnd(k bigint, salt bigint, m bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ((hashint8extended(k, salt) % m) + m) % m $$;

-- ---------------------------------------------------------------------------------------
-- Organisations and their chart of accounts (the same codes for every organisation).
INSERT INTO public.organisations (abn, name, state, gst_frequency)
SELECT abn, name, state, gst_frequency FROM seed_org ORDER BY ordinal;

INSERT INTO public.accounts (organisation_id, code, name, type, bas_role)
SELECT o.id, c.code, c.name, c.type, c.bas_role
  FROM seed_org s
  JOIN public.organisations o ON o.abn = s.abn
 CROSS JOIN (VALUES
    ('1-1100', 'Business cheque account',        'asset',     NULL),
    ('1-1200', 'Trade debtors',                  'asset',     NULL),
    ('1-1310', 'GST paid',                       'asset',     'gst_paid'),
    ('1-1500', 'Plant and equipment at cost',    'asset',     NULL),
    ('2-1200', 'Trade creditors',                'liability', NULL),
    ('2-1310', 'GST collected',                  'liability', 'gst_collected'),
    ('2-1420', 'PAYG withholding payable',       'liability', 'payg_withholding'),
    ('2-1430', 'Superannuation payable',         'liability', NULL),
    ('3-1000', 'Owner''s capital',               'equity',    NULL),
    ('3-9000', 'Retained earnings',              'equity',    NULL),
    ('4-1000', 'Sales',                          'revenue',   NULL),
    ('4-1100', 'Export sales',                   'revenue',   NULL),
    ('4-1200', 'GST-free sales',                 'revenue',   NULL),
    ('4-2000', 'Interest income',                'revenue',   NULL),
    ('6-1000', 'Purchases and cost of sales',    'expense',   NULL),
    ('6-2000', 'Rent',                           'expense',   NULL),
    ('6-3000', 'Wages and salaries',             'expense',   'wages'),
    ('6-3100', 'Superannuation',                 'expense',   NULL),
    ('6-5000', 'Office supplies',                'expense',   NULL),
    ('6-6000', 'Subscriptions and software',     'expense',   NULL)
 ) AS c (code, name, type, bas_role)
 ORDER BY s.ordinal, c.code;

-- ---------------------------------------------------------------------------------------
-- BAS periods, July 2022 to June 2026. A quarterly BAS is due on the 28th of the month
-- after the quarter, except October-December, due 28 February; a monthly one on the 21st
-- of the next month.
INSERT INTO public.bas_periods (organisation_id, financial_year, label, period_start, period_end, due_date)
SELECT o.id,
       f.fy,
       CASE s.gst_frequency
            WHEN 'quarterly' THEN format('Q%s %s', (extract(month FROM g)::int + 5) % 12 / 3 + 1, f.fy)
            ELSE to_char(g, 'Mon YYYY')
       END,
       g::date,
       e.period_end,
       CASE
            WHEN s.gst_frequency = 'monthly' THEN (date_trunc('month', e.period_end) + interval '1 month 20 days')::date
            WHEN extract(month FROM e.period_end) = 12 THEN make_date(extract(year FROM e.period_end)::int + 1, 2, 28)
            ELSE (date_trunc('month', e.period_end) + interval '1 month 27 days')::date
       END
  FROM seed_org s
  JOIN public.organisations o ON o.abn = s.abn
 CROSS JOIN LATERAL (SELECT CASE s.gst_frequency WHEN 'quarterly' THEN interval '3 months'
                                                 ELSE interval '1 month' END AS step) st
 CROSS JOIN LATERAL generate_series(timestamp '2022-07-01', timestamp '2026-06-01', st.step) AS g
 CROSS JOIN LATERAL (SELECT (g + st.step - interval '1 day')::date AS period_end) e
 -- The financial year a period falls in: July to June.
 CROSS JOIN LATERAL (SELECT extract(year FROM g)::int - CASE WHEN extract(month FROM g) < 7 THEN 1 ELSE 0 END AS y) fy_start
 CROSS JOIN LATERAL (SELECT format('FY%s-%s', fy_start.y, lpad(((fy_start.y + 1) % 100)::text, 2, '0')) AS fy) f
 ORDER BY s.ordinal, g;

-- This seed's periods, with what the generator needs: recency 0 is the current period.
CREATE TEMP TABLE seed_period ON COMMIT DROP AS
SELECT p.id AS period_id, p.organisation_id, s.ordinal, s.weight, p.label,
       p.period_start, p.period_end, p.due_date,
       p.period_end - p.period_start + 1 AS days,
       CASE s.gst_frequency WHEN 'quarterly' THEN 3 ELSE 1 END AS months,
       -- 0 for July 2022: with the organisation's ordinal, the key of the period's hashes.
       (extract(year FROM p.period_start)::int - 2022) * 12 + extract(month FROM p.period_start)::int - 7 AS month_index,
       row_number() OVER (PARTITION BY p.organisation_id ORDER BY p.period_start DESC) - 1 AS recency
  FROM public.bas_periods p
  JOIN public.organisations o ON o.id = p.organisation_id
  JOIN seed_org s ON s.abn = o.abn;

-- Every period gets its totals row now, zeros until lines arrive.
INSERT INTO public.periods_sync_totals (period_id)
SELECT period_id FROM seed_period ORDER BY period_id
ON CONFLICT (period_id) DO NOTHING;

-- ---------------------------------------------------------------------------------------
-- Gate states and their history. Transitions (local time, Australia/Sydney):
--   1 open    at 08:00 on the period's first day          (system)
--   2 review  at 10:00 three days after the period ends    (bookkeeper)
--   3 locked  at 16:30 ten days after the period ends      (accountant)
--   4 lodged  at 11:15 two days before the due date        (tax-agent)
-- The current period has reached step 1 (open); the previous one step 2 (review, for even
-- ordinals) or 3 (locked, odd ordinals); all earlier ones step 4 (lodged).
CREATE TEMP TABLE seed_gate_step ON COMMIT DROP AS
SELECT sp.period_id, st.step, st.from_state, st.to_state, st.actor,
       (CASE st.step WHEN 1 THEN sp.period_start + time '08:00'
                     WHEN 2 THEN sp.period_end + 3 + time '10:00'
                     WHEN 3 THEN sp.period_end + 10 + time '16:30'
                     ELSE sp.due_date - 2 + time '11:15' END) AT TIME ZONE 'Australia/Sydney' AS changed_at
  FROM seed_period sp
  JOIN (VALUES (1, NULL, 'open', 'system'),
               (2, 'open', 'review', 'bookkeeper'),
               (3, 'review', 'locked', 'accountant'),
               (4, 'locked', 'lodged', 'tax-agent')) AS st (step, from_state, to_state, actor)
    ON st.step <= CASE WHEN sp.recency = 0 THEN 1
                       WHEN sp.recency = 1 THEN 2 + sp.ordinal % 2
                       ELSE 4 END;

INSERT INTO public.bas_gate_history (period_id, from_state, to_state, changed_at, actor)
SELECT period_id, from_state, to_state, changed_at, actor FROM seed_gate_step ORDER BY period_id, step;

INSERT INTO public.bas_gate_states (period_id, state, changed_at, changed_by)
SELECT DISTINCT ON (period_id) period_id, to_state, changed_at, actor
  FROM seed_gate_step ORDER BY period_id, step DESC;

-- ---------------------------------------------------------------------------------------
-- Journals. Each has a kind, and up to three amounts x1, x2, x3 whose meaning depends on
-- it; its lines (seed_line_template) post linear combinations of them, c1*x1 + c2*x2 +
-- c3*x3, and every coefficient column of a kind sums to zero, so every journal balances.
--
--   kind          share  x1              x2                    x3
--   sale           30 %  net sale        GST = round(x1/10)    -
--   sale_mixed      8 %  net GST sale    GST on it             GST-free part
--   export          3 %  export sale     -                     -
--   interest        2 %  interest        -                     -
--   purchase       20 %  net purchase    GST on it             -
--   purchase_fre    5 %  GST-free buy    -                     -
--   capital         2 %  net equipment   GST on it             -
--   receipt        13 %  from debtor     -                     -
--   payment        12 %  to creditor     -                     -
--   payroll         5 %  gross wages     PAYG withheld (22 %)  superannuation (SG rate)
--   opening             once per organisation, in its first period: owner's capital
--   bas_payment         per lodged period, on its due date: x1 = 1A, x2 = 1B, x3 = W2
CREATE TEMP TABLE seed_line_template (
    kind         text NOT NULL,
    line_no      int NOT NULL,
    account_code text,            -- NULL: the journal's expense account
    tax_code     text NOT NULL,
    c1 int NOT NULL, c2 int NOT NULL, c3 int NOT NULL
) ON COMMIT DROP;

INSERT INTO seed_line_template VALUES
    -- Dr trade debtors (gross), Cr sales (net, GST), Cr GST collected.
    ('sale',         1, '1-1200', 'N-T',  1,  1,  0),
    ('sale',         2, '4-1000', 'GST', -1,  0,  0),
    ('sale',         3, '2-1310', 'N-T',  0, -1,  0),
    -- The same with a GST-free part on its own revenue line.
    ('sale_mixed',   1, '1-1200', 'N-T',  1,  1,  1),
    ('sale_mixed',   2, '4-1000', 'GST', -1,  0,  0),
    ('sale_mixed',   3, '4-1200', 'FRE',  0,  0, -1),
    ('sale_mixed',   4, '2-1310', 'N-T',  0, -1,  0),
    ('export',       1, '1-1200', 'N-T',  1,  0,  0),
    ('export',       2, '4-1100', 'EXP', -1,  0,  0),
    ('interest',     1, '1-1100', 'N-T',  1,  0,  0),
    ('interest',     2, '4-2000', 'INP', -1,  0,  0),
    -- Dr expense (net, GST), Dr GST paid, Cr trade creditors (gross).
    ('purchase',     1, NULL,     'GST',  1,  0,  0),
    ('purchase',     2, '1-1310', 'N-T',  0,  1,  0),
    ('purchase',     3, '2-1200', 'N-T', -1, -1,  0),
    ('purchase_fre', 1, NULL,     'FRE',  1,  0,  0),
    ('purchase_fre', 2, '2-1200', 'N-T', -1,  0,  0),
    ('capital',      1, '1-1500', 'CAP',  1,  0,  0),
    ('capital',      2, '1-1310', 'N-T',  0,  1,  0),
    ('capital',      3, '2-1200', 'N-T', -1, -1,  0),
    ('receipt',      1, '1-1100', 'N-T',  1,  0,  0),
    ('receipt',      2, '1-1200', 'N-T', -1,  0,  0),
    ('payment',      1, '2-1200', 'N-T',  1,  0,  0),
    ('payment',      2, '1-1100', 'N-T', -1,  0,  0),
    -- Dr wages (W1), Cr PAYG withholding (W2), Cr bank (net pay), Dr/Cr superannuation.
    ('payroll',      1, '6-3000', 'N-T',  1,  0,  0),
    ('payroll',      2, '2-1420', 'N-T',  0, -1,  0),
    ('payroll',      3, '1-1100', 'N-T', -1,  1,  0),
    ('payroll',      4, '6-3100', 'N-T',  0,  0,  1),
    ('payroll',      5, '2-1430', 'N-T',  0,  0, -1),
    ('opening',      1, '1-1100', 'N-T',  1,  0,  0),
    ('opening',      2, '3-1000', 'N-T', -1,  0,  0),
    -- Paying a BAS: Dr GST collected (1A), Cr GST paid (1B), Dr PAYG withholding (W2),
    -- Cr bank (the net). None of these lines changes any period's G1, 1A, 1B, W1 or W2.
    ('bas_payment',  1, '2-1310', 'N-T',  1,  0,  0),
    ('bas_payment',  2, '1-1310', 'N-T',  0, -1,  0),
    ('bas_payment',  3, '2-1420', 'N-T',  0,  0,  1),
    ('bas_payment',  4, '1-1100', 'N-T', -1,  1, -1);

-- The ordinary journals: per period, jpm x weight x months (x spike for the current one),
-- give or take 15 %.
CREATE TEMP TABLE seed_journal_raw ON COMMIT DROP AS
WITH per_period AS (
    SELECT sp.*,
           greatest(1, round(:jpm * sp.weight * sp.months
                             * CASE WHEN sp.recency = 0 THEN :spike ELSE 1 END
                             * (85 + pg_temp.rnd(sp.ordinal * 100 + sp.month_index, 1, 31)) / 100.0))::int AS n_journals
      FROM seed_period sp
), numbered AS MATERIALIZED (        -- MATERIALIZED: each hash is computed once
    SELECT pp.*, n, (pp.ordinal * 100 + pp.month_index) * 1000000::bigint + n AS k
      FROM per_period pp
     CROSS JOIN LATERAL generate_series(1, pp.n_journals) AS n
), drawn AS MATERIALIZED (
    SELECT nb.*,
           CASE WHEN r.roll < 30 THEN 'sale'
                WHEN r.roll < 38 THEN 'sale_mixed'
                WHEN r.roll < 41 THEN 'export'
                WHEN r.roll < 43 THEN 'interest'
                WHEN r.roll < 63 THEN 'purchase'
                WHEN r.roll < 68 THEN 'purchase_fre'
                WHEN r.roll < 70 THEN 'capital'
                WHEN r.roll < 83 THEN 'receipt'
                WHEN r.roll < 95 THEN 'payment'
                ELSE 'payroll' END AS kind,
           -- The current period crowds its journals into its last 10 days.
           CASE WHEN nb.recency = 0 AND pg_temp.rnd(nb.k, 3, 100) < :tail_pct
                THEN nb.period_end - pg_temp.rnd(nb.k, 4, 10)::int
                ELSE nb.period_start + pg_temp.rnd(nb.k, 4, nb.days)::int END AS journal_date,
           1000 + pg_temp.rnd(nb.k, 5, 250000) AS amount,             -- $10.00 to $2,509.99
           500 + pg_temp.rnd(nb.k, 6, 80000) AS amount2,
           (ARRAY['6-1000', '6-2000', '6-5000', '6-6000'])[1 + pg_temp.rnd(nb.k, 7, 4)] AS expense_code,
           to_char(nb.period_start, 'YYYYMM') || '-' || lpad(nb.n::text, 6, '0') AS ref
      FROM numbered nb
     CROSS JOIN LATERAL (SELECT pg_temp.rnd(nb.k, 2, 100) AS roll) r
)
SELECT d.ordinal, d.organisation_id, d.period_id, d.n, d.kind, d.journal_date, d.expense_code,
       CASE d.kind
            WHEN 'sale'         THEN 'Sale, tax invoice INV-' || d.ref
            WHEN 'sale_mixed'   THEN 'Sale with GST-free items, tax invoice INV-' || d.ref
            WHEN 'export'       THEN 'Export sale, invoice EXP-' || d.ref
            WHEN 'interest'     THEN 'Interest received, ' || d.ref
            WHEN 'purchase'     THEN 'Purchase, supplier invoice SUP-' || d.ref
            WHEN 'purchase_fre' THEN 'GST-free purchase, supplier invoice SUP-' || d.ref
            WHEN 'capital'      THEN 'Equipment purchase, supplier invoice SUP-' || d.ref
            WHEN 'receipt'      THEN 'Customer receipt REC-' || d.ref
            WHEN 'payment'      THEN 'Supplier payment PAY-' || d.ref
            ELSE                     'Pay run PR-' || d.ref
       END AS description,
       x.x1, x.x2, x.x3
  FROM drawn d
 CROSS JOIN LATERAL (
    SELECT CASE d.kind WHEN 'capital' THEN d.amount * 20      -- $200 to $50,000
                       WHEN 'payroll' THEN d.amount * 3       -- a pay run
                       ELSE d.amount END AS x1
 ) base
 CROSS JOIN LATERAL (
    SELECT base.x1,
           CASE WHEN d.kind IN ('sale', 'sale_mixed', 'purchase', 'capital')
                     THEN round(base.x1 * 1000 / 10000.0)::bigint       -- GST at 10 %
                WHEN d.kind = 'payroll' THEN round(base.x1 * 0.22)::bigint
                ELSE 0 END AS x2,
           CASE WHEN d.kind = 'sale_mixed' THEN d.amount2
                -- The superannuation guarantee rate of the journal's financial year.
                WHEN d.kind = 'payroll' THEN round(base.x1 * CASE WHEN d.journal_date >= date '2025-07-01' THEN 0.12
                                                                   WHEN d.journal_date >= date '2024-07-01' THEN 0.115
                                                                   WHEN d.journal_date >= date '2023-07-01' THEN 0.11
                                                                   ELSE 0.105 END)::bigint
                ELSE 0 END AS x3
 ) x;

-- One opening journal per organisation, in its first period.
INSERT INTO seed_journal_raw (ordinal, organisation_id, period_id, n, kind, journal_date, expense_code, description, x1, x2, x3)
SELECT sp.ordinal, sp.organisation_id, sp.period_id, 0, 'opening', sp.period_start, NULL,
       'Opening balance: owner''s capital', 2500000 + pg_temp.rnd(sp.ordinal, 8, 1000) * 10000, 0, 0
  FROM seed_period sp
 WHERE sp.month_index = 0;

-- The payment of every lodged BAS, on its due date, in the period that date falls in (due
-- dates after June 2026 have no period here and are left out). Its amounts are the period's
-- 1A, 1B and W2, read from the ordinary journals (their GST lines carry x2).
INSERT INTO seed_journal_raw (ordinal, organisation_id, period_id, n, kind, journal_date, expense_code, description, x1, x2, x3)
SELECT lodged.ordinal, lodged.organisation_id, paying.period_id, 0, 'bas_payment', lodged.due_date, NULL,
       'BAS payment to the ATO, ' || lodged.label,
       coalesce(t.gst_1a, 0), coalesce(t.gst_1b, 0), coalesce(t.w2, 0)
  FROM seed_period lodged
  JOIN (SELECT period_id,
               sum(x2) FILTER (WHERE kind IN ('sale', 'sale_mixed')) AS gst_1a,
               sum(x2) FILTER (WHERE kind IN ('purchase', 'capital')) AS gst_1b,
               sum(x2) FILTER (WHERE kind = 'payroll') AS w2
          FROM seed_journal_raw GROUP BY period_id) t ON t.period_id = lodged.period_id
  JOIN seed_period paying ON paying.organisation_id = lodged.organisation_id
                         AND lodged.due_date BETWEEN paying.period_start AND paying.period_end
 WHERE lodged.recency >= 2
   AND (coalesce(t.gst_1a, 0), coalesce(t.gst_1b, 0), coalesce(t.w2, 0)) <> (0, 0, 0);

-- Journal ids: reserved from the identity sequence in one step, in date order.
SELECT nextval(pg_get_serial_sequence('public.journals', 'id')) AS journal_base \gset
CREATE TEMP TABLE seed_journal ON COMMIT DROP AS
SELECT :journal_base + row_number() OVER (ORDER BY ordinal, journal_date, period_id, kind, n) - 1 AS id, r.*
  FROM seed_journal_raw r;
SELECT setval(pg_get_serial_sequence('public.journals', 'id'), max(id)) FROM seed_journal \g /dev/null

ANALYZE seed_journal;                    -- statistics for the joins below

\if :bulk
    -- The totals are computed once after the load, below.
    ALTER TABLE public.journals DISABLE TRIGGER journals_sync_totals;
    ALTER TABLE public.ledger_lines DISABLE TRIGGER ledger_lines_sync_totals;
    -- Checking a foreign key row by row costs an index probe per key and row, most of the
    -- load's time; instead the foreign keys of journals and ledger_lines are dropped for
    -- the load and added back, exactly as they were (pg_get_constraintdef), after it:
    -- adding them checks every row again, in one join per key.
    CREATE TEMP TABLE seed_fk ON COMMIT DROP AS
    SELECT c.conrelid::regclass AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
      FROM pg_constraint c
     WHERE c.contype = 'f' AND c.conrelid IN ('public.journals'::regclass, 'public.ledger_lines'::regclass);
    SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', tbl, conname) FROM seed_fk ORDER BY 1 \gexec
\endif

INSERT INTO public.journals (id, organisation_id, period_id, journal_date, description)
SELECT id, organisation_id, period_id, journal_date, description FROM seed_journal ORDER BY id;

-- The lines, in journal order; zero amounts (e.g. a BAS payment without W2) are left out.
INSERT INTO public.ledger_lines (journal_id, account_id, tax_code, amount_cents)
SELECT j.id, a.id, t.tax_code, v.amount
  FROM seed_journal j
  JOIN seed_line_template t ON t.kind = j.kind
  JOIN public.accounts a ON a.organisation_id = j.organisation_id
                        AND a.code = coalesce(t.account_code, j.expense_code)
 CROSS JOIN LATERAL (SELECT t.c1 * j.x1 + t.c2 * j.x2 + t.c3 * j.x3 AS amount) v
 WHERE v.amount <> 0
 ORDER BY j.id, t.line_no;

\if :bulk
    -- What the triggers would have added up: the recomputation of seeds/validate.sql, for
    -- this seed's periods (journal_count counts journals, line_count lines).
    INSERT INTO public.periods_sync_totals AS s
           (period_id, g1_total_sales_cents, gst_on_sales_1a_cents, gst_on_purchases_1b_cents,
            w1_gross_wages_cents, w2_withheld_cents, line_count, journal_count, updated_at)
    SELECT sp.period_id,
           coalesce(lt.g1, 0), coalesce(lt.gst_1a, 0), coalesce(lt.gst_1b, 0),
           coalesce(lt.w1, 0), coalesce(lt.w2, 0), coalesce(lt.line_count, 0), coalesce(jt.journal_count, 0),
           now()
      FROM seed_period sp
      LEFT JOIN (
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
              FROM seed_journal j
              JOIN public.ledger_lines l ON l.journal_id = j.id
              JOIN public.accounts a ON a.id = l.account_id
              JOIN public.tax_codes t ON t.code = l.tax_code
             GROUP BY j.period_id
           ) lt ON lt.period_id = sp.period_id
      LEFT JOIN (SELECT period_id, count(*) AS journal_count FROM seed_journal GROUP BY period_id) jt
             ON jt.period_id = sp.period_id
    ON CONFLICT (period_id) DO UPDATE
       SET g1_total_sales_cents      = EXCLUDED.g1_total_sales_cents,
           gst_on_sales_1a_cents     = EXCLUDED.gst_on_sales_1a_cents,
           gst_on_purchases_1b_cents = EXCLUDED.gst_on_purchases_1b_cents,
           w1_gross_wages_cents      = EXCLUDED.w1_gross_wages_cents,
           w2_withheld_cents         = EXCLUDED.w2_withheld_cents,
           line_count                = EXCLUDED.line_count,
           journal_count             = EXCLUDED.journal_count,
           updated_at                = EXCLUDED.updated_at;

    ALTER TABLE public.journals ENABLE TRIGGER journals_sync_totals;
    ALTER TABLE public.ledger_lines ENABLE TRIGGER ledger_lines_sync_totals;
    SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', tbl, conname, def) FROM seed_fk ORDER BY 1 \gexec
\endif

-- What was loaded.
SELECT count(DISTINCT sp.organisation_id) AS organisations,
       count(*) AS periods,
       (SELECT count(*) FROM seed_journal) AS journals,
       (SELECT sum(line_count) FROM public.periods_sync_totals WHERE period_id IN (SELECT period_id FROM seed_period)) AS ledger_lines,
       (SELECT sum(t.line_count) FROM public.periods_sync_totals t JOIN seed_period c ON c.period_id = t.period_id
         WHERE c.recency = 0) AS lines_in_current_periods
  FROM seed_period sp;

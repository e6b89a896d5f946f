#!/usr/bin/env bash
# seeds/migration_smoke.sh: the gate a migration passes before traffic moves to it.
#
# Against a seeded database (seeds/seed_small.sql or seeds/seed_spike.sql), it:
#   1. applies seeds/migrations/NNN_*.sql in order (each is idempotent);
#   2. runs the mid-version upgrade flow: the OLD application version's statements (a
#      journal with its balanced lines, without journals.region, then its balances) and the
#      NEW version's (the same setting region, then a bas_lodgements row) both succeed
#      against the migrated schema, as the application role ledger_app when it exists;
#   3. seeds validation traffic: a few journals in the current open periods, one of them
#      corrected (its lines updated) and one voided (deleted);
#   4. checks the ledger's invariants (seeds/validate.sql): every journal balances, and
#      periods_sync_totals equals its recomputation from the ledger for every period.
# It prints what it does, and exits non-zero with a message naming the failed step.
#
#     PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... bash seeds/migration_smoke.sh
#
# psql comes from $PGBIN when set, else from PATH; the connection from the standard libpq
# variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, ...). Running it twice passes
# twice (the traffic adds rows; nothing is assumed absent).
#
# Options:
#   --no-migrate  do not apply the migrations: check they have been applied
#   --rollback    run steps 2 to 4 in one transaction and roll it back, leaving the rows as
#                 they were (only identity sequences advance). For pgflip's smoke phase on
#                 green, which must stay an exact copy of blue until the catch-up.

set -euo pipefail

usage() {
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

migrate=1
rollback=0
for arg in "$@"; do
    case "$arg" in
        --no-migrate) migrate=0 ;;
        --rollback) rollback=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "migration_smoke: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -n "${PGBIN:-}" ]]; then
    psql_bin="$PGBIN/psql"
else
    psql_bin="$(command -v psql || true)"
fi
[[ -n "$psql_bin" && -x "$psql_bin" ]] || { echo "migration_smoke: psql not found: set PGBIN or PATH" >&2; exit 2; }

say() { printf 'migration_smoke: %s\n' "$*"; }
fail() { printf 'migration_smoke: FAILED: %s\n' "$*" >&2; exit 1; }
# psql without ~/.psqlrc, quiet, stopping at the first error (exit status 3).
run_psql() { "$psql_bin" -X -q -v ON_ERROR_STOP=1 "$@"; }

# ---------------------------------------------------------------------------------------
server="$(run_psql -At -c "SELECT format('%s as %s on %s:%s, %s',
        current_database(), current_user, coalesce(host(inet_server_addr()), 'a socket'),
        current_setting('port'), split_part(version(), ' on ', 1))")" \
    || fail "cannot connect (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-} PGUSER=${PGUSER:-} PGDATABASE=${PGDATABASE:-})"
say "database: $server"

seeded="$(run_psql -At -c "SELECT to_regclass('public.organisations') IS NOT NULL
                                  AND EXISTS (SELECT 1 FROM public.organisations)")" \
    || fail "cannot read the schema"
[[ "$seeded" == t ]] || fail "the database is not seeded: load seeds/seed_small.sql (or seed_spike.sql) first"

# ---------------------------------------------------------------------------------------
# 1. The migrations.
if ((migrate)); then
    shopt -s nullglob
    migrations=("$here"/migrations/[0-9][0-9][0-9]_*.sql)
    ((${#migrations[@]})) || fail "no migrations in $here/migrations"
    for file in "${migrations[@]}"; do
        start=$SECONDS
        run_psql -f "$file" || fail "migration $(basename "$file") failed (psql's error above)"
        say "applied migration $(basename "$file") ($((SECONDS - start)) s)"
    done
else
    migrated="$(run_psql -At -c "SELECT EXISTS (SELECT 1 FROM pg_attribute
                                                 WHERE attrelid = 'public.journals'::regclass
                                                   AND attname = 'region' AND NOT attisdropped)
                                     AND to_regclass('public.journals_region_idx') IS NOT NULL
                                     AND to_regclass('public.bas_lodgements') IS NOT NULL")" \
        || fail "cannot read the schema"
    [[ "$migrated" == t ]] || fail "--no-migrate: the migrations have not been applied (journals.region, journals_region_idx, bas_lodgements)"
    say "migrations already applied (journals.region, journals_region_idx, bas_lodgements)"
fi

# ---------------------------------------------------------------------------------------
# The psql scripts of steps 2 to 4. Each application version runs as ledger_app (when the
# role exists and the connecting role may SET ROLE to it), so the grants are tested too.

# Helpers, and the target: the first organisation's current (open) period.
prelude=$(cat <<'SQL'
\set ON_ERROR_STOP 1
\set QUIET on
-- A failed check stops the script with its message. (Checks end with \gset, which
-- stores their empty result instead of printing it.)
CREATE OR REPLACE FUNCTION pg_temp.check(ok boolean, message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'smoke check failed: %', message;
    END IF;
END
$$;
SELECT pg_temp.check(EXISTS (SELECT 1 FROM public.bas_gate_states WHERE state = 'open'),
                     'no BAS period is open') \gset
SELECT o.id AS org_id, o.name AS org_name, o.state AS org_state,
       p.id AS period_id, p.label AS period_label, p.period_end AS journal_date
  FROM public.organisations o
  JOIN public.bas_periods p ON p.organisation_id = o.id
  JOIN public.bas_gate_states g ON g.period_id = p.id AND g.state = 'open'
 ORDER BY o.id, p.period_start DESC
 LIMIT 1 \gset
SELECT coalesce((SELECT pg_has_role(current_user, r.oid, 'MEMBER')
                   FROM pg_roles r WHERE r.rolname = 'ledger_app'), false) AS as_app \gset
SQL
)

as_app=$(cat <<'SQL'
\if :as_app
    SET ROLE ledger_app;
\endif
SQL
)

# The application version before the migrations: it knows neither journals.region nor
# bas_lodgements. It posts a GST sale of $100.00 + $10.00 GST and reads balances.
old_app=$(cat <<'SQL'
\echo 'migration_smoke: old app version: a sale for' :'org_name' 'in' :period_label
-- The gate must be open, and stays so while the journal is written.
SELECT state AS gate_state FROM public.bas_gate_states WHERE period_id = :period_id FOR SHARE \gset
SELECT pg_temp.check(:'gate_state' = 'open', format('period %s is %s, not open', :period_id, :'gate_state')) \gset
-- The period's totals before, locked so that the change below is ours alone.
SELECT g1_total_sales_cents AS g1_before, gst_on_sales_1a_cents AS gst_1a_before
  FROM public.periods_sync_totals WHERE period_id = :period_id FOR UPDATE \gset

INSERT INTO public.journals (organisation_id, period_id, journal_date, description)
VALUES (:org_id, :period_id, :'journal_date', 'Smoke test (old app): sale, tax invoice INV-SMOKE-OLD')
RETURNING id AS old_journal_id \gset
INSERT INTO public.ledger_lines (journal_id, account_id, tax_code, amount_cents)
SELECT :old_journal_id, a.id, v.tax_code, v.amount_cents
  FROM (VALUES (1, '1-1200', 'N-T',  11000),     -- Dr trade debtors
               (2, '4-1000', 'GST', -10000),     -- Cr sales
               (3, '2-1310', 'N-T',  -1000))     -- Cr GST collected
       AS v (n, code, tax_code, amount_cents)
  JOIN public.accounts a ON a.organisation_id = :org_id AND a.code = v.code
 ORDER BY v.n;

-- Reading back: the journal, and the organisation's balances.
SELECT count(*) AS old_lines, sum(amount_cents) AS old_sum
  FROM public.ledger_lines WHERE journal_id = :old_journal_id \gset
SELECT pg_temp.check(:old_lines = 3 AND :old_sum = 0, 'the old app''s journal has 3 lines summing to 0') \gset
SELECT count(*) AS accounts, sum(balance) AS trial_balance,
       sum(balance) FILTER (WHERE code = '1-1200') AS debtors,
       -sum(balance) FILTER (WHERE type = 'revenue') AS revenue
  FROM (SELECT a.code, a.type, coalesce(sum(l.amount_cents), 0) AS balance
          FROM public.accounts a
          LEFT JOIN public.ledger_lines l ON l.account_id = a.id
         WHERE a.organisation_id = :org_id
         GROUP BY a.code, a.type) AS b \gset
SELECT pg_temp.check(:trial_balance = 0, format('the trial balance sums to 0, not %s', :trial_balance)) \gset
SELECT pg_temp.check(t.g1_total_sales_cents = :g1_before + 11000 AND t.gst_on_sales_1a_cents = :gst_1a_before + 1000,
                     'periods_sync_totals took the sale: G1 +110.00, 1A +10.00')
  FROM public.periods_sync_totals t WHERE t.period_id = :period_id \gset
\echo 'migration_smoke: old app version: journal' :old_journal_id 'posted (3 lines, balanced), G1 +11000 and 1A +1000 cents;' :accounts 'account balances read (trial balance' :trial_balance 'debtors' :debtors 'cents)'
SQL
)

# The application version after the migrations: it sets journals.region and records a
# lodgement. It posts a GST purchase of $200.00 + $20.00 GST and reads balances by region.
new_app=$(cat <<'SQL'
\echo 'migration_smoke: new app version: a purchase for' :'org_name' 'in' :period_label
SELECT state AS gate_state FROM public.bas_gate_states WHERE period_id = :period_id FOR SHARE \gset
SELECT pg_temp.check(:'gate_state' = 'open', format('period %s is %s, not open', :period_id, :'gate_state')) \gset
SELECT gst_on_purchases_1b_cents AS gst_1b_before
  FROM public.periods_sync_totals WHERE period_id = :period_id FOR UPDATE \gset

INSERT INTO public.journals (organisation_id, period_id, journal_date, description, region)
VALUES (:org_id, :period_id, :'journal_date', 'Smoke test (new app): purchase, supplier invoice SUP-SMOKE-NEW', :'org_state')
RETURNING id AS new_journal_id, region AS new_region \gset
INSERT INTO public.ledger_lines (journal_id, account_id, tax_code, amount_cents)
SELECT :new_journal_id, a.id, v.tax_code, v.amount_cents
  FROM (VALUES (1, '6-2000', 'GST',  20000),     -- Dr rent
               (2, '1-1310', 'N-T',   2000),     -- Dr GST paid
               (3, '2-1200', 'N-T', -22000))     -- Cr trade creditors
       AS v (n, code, tax_code, amount_cents)
  JOIN public.accounts a ON a.organisation_id = :org_id AND a.code = v.code
 ORDER BY v.n;

SELECT count(*) AS new_lines, sum(amount_cents) AS new_sum
  FROM public.ledger_lines WHERE journal_id = :new_journal_id \gset
SELECT pg_temp.check(:new_lines = 3 AND :new_sum = 0, 'the new app''s journal has 3 lines summing to 0') \gset
SELECT pg_temp.check(t.gst_on_purchases_1b_cents = :gst_1b_before + 2000,
                     'periods_sync_totals took the purchase: 1B +20.00')
  FROM public.periods_sync_totals t WHERE t.period_id = :period_id \gset
-- Balances by region in the period: the journals with a region, and those without.
SELECT count(DISTINCT j.id) FILTER (WHERE j.region IS NOT NULL) AS journals_with_region,
       count(DISTINCT j.id) FILTER (WHERE j.region IS NULL) AS journals_without_region,
       coalesce(sum(l.amount_cents) FILTER (WHERE j.region = :'org_state' AND a.type = 'expense'), 0) AS region_expenses
  FROM public.journals j
  JOIN public.ledger_lines l ON l.journal_id = j.id
  JOIN public.accounts a ON a.id = l.account_id
 WHERE j.organisation_id = :org_id AND j.period_id = :period_id \gset
SELECT pg_temp.check(:region_expenses >= 20000, 'the purchase shows in its region''s expenses') \gset

-- A lodgement of the organisation's latest locked or lodged period, at its current totals.
SELECT p.id AS lodge_period_id, p.label AS lodge_period_label
  FROM public.bas_periods p
  JOIN public.bas_gate_states g ON g.period_id = p.id AND g.state IN ('locked', 'lodged')
 WHERE p.organisation_id = :org_id
 ORDER BY p.period_start DESC
 LIMIT 1 \gset
INSERT INTO public.bas_lodgements
       (period_id, lodged_by, receipt_number, g1_total_sales_cents, gst_on_sales_1a_cents,
        gst_on_purchases_1b_cents, w1_gross_wages_cents, w2_withheld_cents, net_payable_cents)
SELECT t.period_id, 'smoke-test (new app)', format('SMOKE-%s-%s', t.period_id, pg_current_xact_id()),
       t.g1_total_sales_cents, t.gst_on_sales_1a_cents, t.gst_on_purchases_1b_cents,
       t.w1_gross_wages_cents, t.w2_withheld_cents,
       t.gst_on_sales_1a_cents - t.gst_on_purchases_1b_cents + t.w2_withheld_cents
  FROM public.periods_sync_totals t WHERE t.period_id = :lodge_period_id
RETURNING id AS lodgement_id, receipt_number, net_payable_cents \gset
SELECT count(*) AS lodgements FROM public.bas_lodgements WHERE period_id = :lodge_period_id \gset
\echo 'migration_smoke: new app version: journal' :new_journal_id 'posted with region' :new_region '(3 lines, balanced), 1B +2000 cents; journals of the period with a region:' :journals_with_region 'without:' :journals_without_region
\echo 'migration_smoke: new app version: lodgement' :lodgement_id 'of' :lodge_period_label 'recorded, receipt' :receipt_number 'net payable' :net_payable_cents 'cents;' :lodgements 'lodgement(s) of that period'
SQL
)

# Validation traffic: a sale, a purchase and a pay run in the current open period of up to
# three organisations (as the new version writes them); then a correction (a sale's lines
# all doubled in one UPDATE) and a void (a pay run's lines deleted, then the journal).
traffic=$(cat <<'SQL'
WITH target AS (
    SELECT DISTINCT ON (o.id) o.id AS org_id, o.state, p.id AS period_id, p.period_end
      FROM public.organisations o
      JOIN public.bas_periods p ON p.organisation_id = o.id
      JOIN public.bas_gate_states g ON g.period_id = p.id AND g.state = 'open'
     ORDER BY o.id, p.period_start DESC
     LIMIT 3
), new_journals AS (
    INSERT INTO public.journals (organisation_id, period_id, journal_date, description, region)
    SELECT t.org_id, t.period_id, t.period_end, 'Smoke traffic: ' || k.kind, t.state
      FROM target t
     CROSS JOIN (VALUES ('sale'), ('purchase'), ('pay run')) AS k (kind)
     ORDER BY t.org_id, k.kind
    RETURNING id, organisation_id, description
), new_lines AS (
    INSERT INTO public.ledger_lines (journal_id, account_id, tax_code, amount_cents)
    SELECT nj.id, a.id, v.tax_code, v.amount_cents
      FROM new_journals nj
      JOIN (VALUES ('sale',     1, '1-1200', 'N-T',   55000),
                   ('sale',     2, '4-1000', 'GST',  -50000),
                   ('sale',     3, '2-1310', 'N-T',   -5000),
                   ('purchase', 1, '6-5000', 'GST',   12000),
                   ('purchase', 2, '1-1310', 'N-T',    1200),
                   ('purchase', 3, '2-1200', 'N-T',  -13200),
                   ('pay run',  1, '6-3000', 'N-T',  300000),   -- W1
                   ('pay run',  2, '2-1420', 'N-T',  -66000),   -- W2
                   ('pay run',  3, '1-1100', 'N-T', -234000),
                   ('pay run',  4, '6-3100', 'N-T',   36000),
                   ('pay run',  5, '2-1430', 'N-T',  -36000))
           AS v (kind, n, code, tax_code, amount_cents)
        ON nj.description = 'Smoke traffic: ' || v.kind
      JOIN public.accounts a ON a.organisation_id = nj.organisation_id AND a.code = v.code
     ORDER BY nj.id, v.n
    RETURNING journal_id
)
SELECT count(*) AS traffic_lines,
       count(DISTINCT nl.journal_id) AS traffic_journals,
       count(DISTINCT nj.organisation_id) AS traffic_orgs,
       max(nj.id) FILTER (WHERE nj.description = 'Smoke traffic: sale') AS corrected_journal_id,
       max(nj.id) FILTER (WHERE nj.description = 'Smoke traffic: pay run') AS voided_journal_id
  FROM new_lines nl
  JOIN new_journals nj ON nj.id = nl.journal_id \gset
SELECT pg_temp.check(:traffic_journals = 3 * :traffic_orgs AND :traffic_lines = 11 * :traffic_orgs,
                     format('traffic: %s journals, %s lines for %s organisations', :traffic_journals, :traffic_lines, :traffic_orgs)) \gset
UPDATE public.ledger_lines SET amount_cents = amount_cents * 2 WHERE journal_id = :corrected_journal_id;
DELETE FROM public.ledger_lines WHERE journal_id = :voided_journal_id;
DELETE FROM public.journals WHERE id = :voided_journal_id;
\echo 'migration_smoke: traffic:' :traffic_journals 'journals with' :traffic_lines 'lines in the open periods of' :traffic_orgs 'organisations; journal' :corrected_journal_id 'corrected, journal' :voided_journal_id 'voided'
SQL
)

invariants="\\echo 'migration_smoke: checking the ledger invariants (seeds/validate.sql)'
\\i :validate_sql"

# ---------------------------------------------------------------------------------------
# 2 to 4, in separate transactions (committed), or in one rolled back.
session() {
    local what="$1" script="$2"
    run_psql -v validate_sql="$here/validate.sql" -f - <<<"$script" \
        || fail "$what (psql's error above)"
}

if ((rollback)); then
    say "steps 2 to 4 run in one transaction, rolled back at the end (--rollback)"
    session "the upgrade flow, traffic or invariants (rolled back)" "$prelude
BEGIN;
$as_app
$old_app
$new_app
$traffic
RESET ROLE;
$invariants
ROLLBACK;"
else
    session "the old application version's statements" "$prelude
BEGIN;
$as_app
$old_app
COMMIT;"
    session "the new application version's statements" "$prelude
BEGIN;
$as_app
$new_app
COMMIT;"
    session "the validation traffic" "$prelude
BEGIN;
$as_app
$traffic
COMMIT;"
    session "the ledger invariants" "$prelude
$invariants"
fi

if ((rollback)); then
    say "passed: the migrated schema serves the old and the new application version, the ledger invariants hold (traffic rolled back)"
else
    say "passed: the migrated schema serves the old and the new application version, the ledger invariants hold"
fi

// node-postgres through the sidecar across switches: named prepared statements (its
// statement cache), queries queued without waiting (its way of pipelining), user types as
// text, a type met first away from home, LISTEN/NOTIFY, COPY (pg-copy-streams), a
// cancelled query and a transaction open when a switch is asked for.
'use strict';
const { Client } = require('pg');
const { from: copyFrom } = require('pg-copy-streams');
const readline = require('readline');

const lines = readline.createInterface({ input: process.stdin });
const answers = [];
const waiting = [];
lines.on('line', (line) => (waiting.length ? waiting.shift()(line) : answers.push(line)));
const ask = (line) => {
  console.log(line);
  return new Promise((resolve) => (answers.length ? resolve(answers.shift()) : waiting.push(resolve)));
};
const check = (ok, what) => {
  if (!ok) throw new Error('check failed: ' + JSON.stringify(what));
};

const homeLevel = Number(process.env.PGFLIP_HOME_LEVEL_OID);

// A type first met away from home: its column shows the home OID, and the catalogs
// answer home OIDs by name and by OID (node-postgres sends parameters untyped, as text).
async function meetLevel(client) {
  const level = await client.query("SELECT 'high'::level AS l");
  check(level.fields[0].dataTypeID === homeLevel && level.rows[0].l === 'high', level.fields);
  const byName = await client.query("SELECT oid FROM pg_catalog.pg_type WHERE typname = 'level'");
  check(Number(byName.rows[0].oid) === homeLevel, byName.rows);
  const byOid = await client.query('SELECT typname FROM pg_catalog.pg_type WHERE oid = $1', [homeLevel]);
  check(byOid.rows.length === 1 && byOid.rows[0].typname === 'level', byOid.rows);
}

async function main(dsn, tag) {
  const client = new Client({ connectionString: dsn });
  await client.connect();
  const notes = [];
  client.on('notification', (n) => notes.push(n.payload));
  await client.query(`LISTEN driver_${tag}`);
  const sides = [];
  for (let round = 0; round < 4; round++) {
    if (round === 1) await meetLevel(client);
    const row = await client.query({ name: 'row', text: 'SELECT m, p, s, ms, ps FROM readings WHERE id = $1', values: [1] });
    const r = row.rows[0];
    check(r.m === 'happy' && r.p === '(ok,7)' && r.s === 3, r);
    check(JSON.stringify(r.ms) === '["sad","happy"]' || r.ms === '{sad,happy}', r);
    const inserted = await client.query({
      name: 'insert',
      text: 'INSERT INTO readings (m, p, ms, who) VALUES ($1, $2, $3, $4) RETURNING p',
      values: ['sad', `(ok,${round})`, '{ok}', tag],
    });
    check(inserted.rows[0].p === `(ok,${round})`, inserted.rows);
    // Blue and green are not kept in step here: count what this round adds on this side.
    const count = async () => Number((await client.query('SELECT count(*) AS n FROM plain WHERE who = $1', [tag])).rows[0].n);
    const before = await count();
    const queued = [];
    for (let i = 0; i < 5; i++) queued.push(client.query('INSERT INTO plain (who, n) VALUES ($1, $2)', [tag, i]));
    await Promise.all(queued);
    await new Promise((resolve, reject) => {
      const copy = client.query(copyFrom('COPY plain (who, n) FROM STDIN'));
      copy.on('error', reject);
      copy.on('finish', resolve);
      for (let i = 0; i < 5; i++) copy.write(`${tag}\t${100 * round + i}\n`);
      copy.end();
    });
    const added = (await count()) - before;
    check(added === 10, added);
    await client.query(`NOTIFY driver_${tag}, 'round ${round}'`);
    const sleep = `SELECT pg_sleep(5) AS node_${tag}`;
    // Settled at once, so that its rejection is never unhandled while the cancel runs.
    const sleeping = client.query(sleep).then(
      () => false,
      (e) => e.code === '57014',
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const canceller = new Client({ connectionString: dsn });
    await canceller.connect();
    await canceller.query('SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = $1', [sleep]);
    await canceller.end();
    check(await sleeping, 'the sleep was cancelled');
    check((await client.query('SELECT 1 AS one')).rows[0].one === 1, 'usable after the cancel');
    sides.push((await ask('SWITCH')).split(' ').pop());
  }
  await client.query('BEGIN');
  await client.query('INSERT INTO plain (who, n) VALUES ($1, -1)', [tag]);
  await ask('SWITCH_BEGIN');
  await new Promise((resolve) => setTimeout(resolve, 500));
  await client.query('COMMIT');
  sides.push((await ask('SWITCH_WAIT')).split(' ').pop());
  await new Promise((resolve) => setTimeout(resolve, 300));
  check(JSON.stringify(notes) === JSON.stringify([0, 1, 2, 3].map((i) => `round ${i}`)), notes);
  await client.end();
  console.log('DONE ' + sides.join(','));
  lines.close();
}

main(process.argv[2], process.argv[3]).catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});

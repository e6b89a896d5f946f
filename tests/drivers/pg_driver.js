// node-postgres through the sidecar across switches: named prepared statements (its
// statement cache), queries queued without waiting (its way of pipelining), user types as
// text, LISTEN/NOTIFY, a cancelled query and a transaction open when a switch is asked for.
'use strict';
const { Client } = require('pg');
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

async function main(dsn, tag) {
  const client = new Client({ connectionString: dsn });
  await client.connect();
  const notes = [];
  client.on('notification', (n) => notes.push(n.payload));
  await client.query(`LISTEN driver_${tag}`);
  const sides = [];
  for (let round = 0; round < 4; round++) {
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
    const queued = [];
    for (let i = 0; i < 5; i++) queued.push(client.query('INSERT INTO plain (who, n) VALUES ($1, $2)', [tag, i]));
    await Promise.all(queued);
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

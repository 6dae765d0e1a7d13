'use strict';
// The safe way to mix honker with better-sqlite3: load the honker extension
// into the better-sqlite3 connection (one SQLite copy in this process); a
// honker worker in another process claims what it enqueued.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const Sqlite = require('better-sqlite3');
const { loadExtension, extensionPath, HonkerError } = require('..');
const { tmpdb, deadline, child, killChildren } = require('./helpers.js');

test.after(killChildren);

const WORKER = path.join(__dirname, 'fixtures', 'worker.js');
const haveExt = fs.existsSync(extensionPath());

test('better-sqlite3 + loadExtension: a business write and its job commit together', { skip: !haveExt && `no extension at ${extensionPath()} (make node-test builds it)` }, async () => {
  const file = tmpdb();
  const conn = new Sqlite(file);
  conn.pragma('journal_mode = WAL');
  loadExtension(conn);
  conn.exec('CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER)');
  const placeOrder = conn.transaction((userId) => {
    const { lastInsertRowid } = conn.prepare('INSERT INTO orders (user_id) VALUES (?)').run(userId);
    return conn.prepare('SELECT honker_enqueue(?, ?) AS id').get('work', JSON.stringify({ order: Number(lastInsertRowid) })).id;
  });
  const w = child(WORKER, [file, 'claim']);
  await w.next((m) => m === 'ready', 20000, 'worker ready');
  const jobId = placeOrder(42);
  const acked = await w.next((m) => m && m.acked !== undefined, 10000, 'the worker to claim the job');
  assert.equal(acked.acked, jobId);
  assert.throws(() => conn.transaction(() => {
    conn.prepare('INSERT INTO orders (user_id) VALUES (?)').run(7);
    conn.prepare("SELECT honker_enqueue('work', 'not json')").get();
  })(), /invalid JSON/);
  assert.equal(conn.prepare('SELECT COUNT(*) AS n FROM orders').get().n, 1, 'rolled back together');
  w.send('stop');
  await w.next((m) => m === 'done', 10000, 'worker done');
  await deadline(w.exited(), 10000, 'worker exit');
  conn.close();
});

test('loadExtension explains what is wrong', () => {
  assert.throws(() => loadExtension({}), (e) => e instanceof HonkerError && e.code === 'invalid_argument');
  const saved = process.env.HONKER_EXT;
  process.env.HONKER_EXT = '/nonexistent/libhonker_ext.so';
  try {
    assert.throws(() => loadExtension(new Sqlite(':memory:')), /make ext/);
  } finally {
    if (saved === undefined) delete process.env.HONKER_EXT;
    else process.env.HONKER_EXT = saved;
  }
});

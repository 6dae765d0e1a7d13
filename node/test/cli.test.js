'use strict';
// `npx honker <command>`: the package's bin (package.json "bin"), the
// operator's command run as a process through the native addon.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { open } = require('..');
const { tmpdb, deadline } = require('./helpers.js');

const pkg = require('../package.json');
const BIN = path.join(__dirname, '..', pkg.bin.honker);

function honker(...args) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120000 });
}

test('the operator\'s commands run through the package\'s bin', async () => {
  const file = tmpdb();
  const db = open(file);
  const q = db.queue('emails');
  q.setEventsSync(true);
  q.enqueueSync({ to: 'ada' });
  const doomed = q.enqueueSync({ to: 'nobody' }, { maxAttempts: 1, priority: 9 });
  const job = q.claimOneSync('w');
  assert.equal(job.id, doomed);
  assert.equal(await job.fail('no such address'), true);
  db.close();

  const queues = honker('queues', file, '--json');
  assert.equal(queues.status, 0, queues.stderr);
  const [emails] = JSON.parse(queues.stdout);
  assert.deepEqual([emails.name, emails.ready, emails.dead, emails.events], ['emails', 1, 1, true]);
  const one = honker('job', file, String(doomed));
  assert.equal(one.status, 0);
  assert.match(one.stdout, /no such address/);
  const events = honker('events', file, '--after', '0', '--once', '--json');
  const kinds = events.stdout.trim().split('\n').map((l) => JSON.parse(l).type);
  assert.deepEqual(kinds, ['enqueued', 'enqueued', 'started', 'failed', 'dead']);
  assert.equal(honker('requeue', file, String(doomed)).status, 0);
  assert.equal(open(file).queue('emails').statsSync().dead, 0);

  assert.equal(honker('job', file, '424242').status, 3, 'no such job');
  assert.equal(honker('queues', `${file}.typo`).status, 3, 'no such file');
  const usage = honker('frobnicate', file);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /frobnicate/);
  const help = honker('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /queues/);
});

test('a following command prints each commit and ends on Ctrl-C', async () => {
  const file = tmpdb();
  const db = open(file);
  const orders = db.stream('orders');
  const child = spawn(process.execPath, [BIN, 'tail', file, 'orders', '--after', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = new Promise((resolve) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(out);
      });
    });
    orders.publishSync({ n: 1 });
    assert.match(await deadline(line, 30000, 'the first line'), /\{"n":1\}\n$/);
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal)));
    child.kill('SIGINT');
    assert.equal(await deadline(exited, 30000, 'the exit'), 'SIGINT');
  } finally {
    child.kill('SIGKILL');
    db.close();
  }
});

'use strict';
// Test helpers: fresh database files, deadlines (tests wait on signals with
// a deadline, never on sleeps), and an event-loop pace meter.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');

/** A fresh database path in its own temporary directory. */
function tmpdb(name = 'test') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'honker-node-'));
  return path.join(dir, `${name}.db`);
}

/** Resolves with `p`, or rejects once `ms` have passed. */
function deadline(p, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * Runs `during()` while a 1 ms interval ticks; returns the interval's
 * largest gap and tick count, and how long `during` took.
 */
async function pace(during) {
  const ticks = [];
  const t0 = performance.now();
  const timer = setInterval(() => ticks.push(performance.now()), 1);
  let value;
  try {
    value = await during();
  } finally {
    clearInterval(timer);
  }
  const elapsed = performance.now() - t0;
  let maxGap = 0;
  let prev = t0;
  for (const t of ticks) {
    maxGap = Math.max(maxGap, t - prev);
    prev = t;
  }
  maxGap = Math.max(maxGap, performance.now() - prev);
  return { value, elapsed, maxGap, ticks: ticks.length };
}

/** A child node process speaking IPC; `next(pred)` awaits a message. */
const children = new Set();

/** Kills children still running (after a failed test), so the test process can exit. */
function killChildren() {
  for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}

function child(script, args = [], env = {}) {
  const { fork } = require('node:child_process');
  const proc = fork(script, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  const inbox = [];
  const waiters = [];
  proc.on('message', (m) => {
    inbox.push(m);
    for (const w of waiters.splice(0)) w();
  });
  return {
    proc,
    inbox,
    send: (m) => proc.send(m),
    /** Resolves with the first message (from now or already received) matching `pred`. */
    async next(pred, ms = 20000, what = 'a message from the child') {
      const find = () => inbox.findIndex(pred);
      const wait = async () => {
        for (;;) {
          const i = find();
          if (i >= 0) return inbox.splice(i, 1)[0];
          await new Promise((resolve) => waiters.push(resolve));
        }
      };
      return deadline(wait(), ms, what);
    },
    exited: () => (proc.exitCode !== null || proc.signalCode !== null
      ? Promise.resolve([proc.exitCode, proc.signalCode])
      : once(proc, 'exit')),
  };
}

module.exports = { tmpdb, deadline, pace, child, killChildren };

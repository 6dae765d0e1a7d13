'use strict';
// Docs are tests: every ```js block of README.md runs as written, on its own
// (an ES module in a fresh directory, in a fresh process).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { execFile } = require('node:child_process');
const { deadline } = require('./helpers.js');

const root = path.join(__dirname, '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);

/**
 * Writes one block as a file (its first-line comment names it, as in
 * `// worker.mjs: ...`; else example.mjs) in `dir`, or a fresh directory.
 */
function write(block, dir = fs.mkdtempSync(path.join(os.tmpdir(), 'honker-readme-'))) {
  const source = block
    .replaceAll("from 'honker'", `from '${pathToFileURL(path.join(root, 'index.mjs'))}'`)
    .replaceAll("from 'better-sqlite3'", `from '${pathToFileURL(require.resolve('better-sqlite3'))}'`);
  const named = /^\/\/ ([\w-]+\.mjs):/.exec(block);
  const file = path.join(dir, named ? named[1] : 'example.mjs');
  fs.writeFileSync(file, source);
  return file;
}

/** Runs one file; resolves with its output. */
function run(file, block) {
  return deadline(new Promise((resolve, reject) => {
    execFile(process.execPath, [file], { cwd: path.dirname(file) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${block}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  }), 60000, 'a README example');
}

/**
 * The blocks in order. Named blocks (`// tasks.mjs: ...`) are files of one
 * app in one directory: `tasks.mjs` is a module the others import,
 * `worker.mjs` runs in the background while the blocks after it run, then
 * gets SIGTERM and must drain and exit 0; the rest run in turn. Unnamed
 * blocks run alone, each in a fresh directory.
 */
async function runAll() {
  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'honker-readme-app-'));
  let out = '';
  let worker = null;
  const stopWorker = async () => {
    if (worker === null) return;
    const w = worker;
    worker = null;
    w.proc.kill('SIGTERM');
    const { code, stdout, stderr } = await deadline(w.exit, 60000, 'the README worker to drain');
    assert.equal(code, 0, `the README worker exited ${code}\n${stdout}\n${stderr}`);
    out += stdout;
  };
  for (const block of blocks) {
    const named = /^\/\/ ([\w-]+\.mjs):/.exec(block);
    if (!named) {
      await stopWorker();
      out += await run(write(block), block);
      continue;
    }
    const file = write(block, app);
    if (named[1] === 'tasks.mjs') continue;
    if (named[1] === 'worker.mjs') {
      const { spawn } = require('node:child_process');
      const proc = spawn(process.execPath, [file], { cwd: app });
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d) => (stdout += d));
      proc.stderr.on('data', (d) => (stderr += d));
      const exit = new Promise((resolve) => proc.on('exit', (code) => resolve({ code, stdout, stderr })));
      worker = { proc, exit };
      continue;
    }
    out += await run(file, block);
  }
  await stopWorker();
  return out;
}

test('the README examples run, each on its own', async () => {
  assert.ok(blocks.length >= 10, `found ${blocks.length} examples`);
  const out = await runAll();
  assert.match(out, /\{ job: 1, result: \{ userId: 1, sentTo: 'ada@example\.com' \} \}/);
  assert.match(out, /worker drained/);
  assert.match(out, /orders \{ id: 42, status: 'shipped' \}/);
  assert.match(out, /state: 'scheduled'/);
  assert.match(out, /\{ ready: 0, scheduled: 1, processing: 0, dead: 0, completed: 0 \}/);
  assert.match(out, /\{ maxAgeS: 604800, maxCount: 100000 \}/);
  assert.match(out, /2026-03-08T07:00:00\.000Z/);
  assert.match(out, /made under token \d+/);
});

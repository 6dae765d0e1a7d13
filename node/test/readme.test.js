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

/** Runs one block alone; resolves with its output. */
function run(block) {
  const source = block
    .replaceAll("from 'honker'", `from '${pathToFileURL(path.join(root, 'index.mjs'))}'`)
    .replaceAll("from 'better-sqlite3'", `from '${pathToFileURL(require.resolve('better-sqlite3'))}'`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'honker-readme-'));
  const file = path.join(dir, 'example.mjs');
  fs.writeFileSync(file, source);
  return deadline(new Promise((resolve, reject) => {
    execFile(process.execPath, [file], { cwd: dir }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${block}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  }), 60000, 'a README example');
}

test('the README examples run, each on its own', async () => {
  assert.ok(blocks.length >= 10, `found ${blocks.length} examples`);
  let out = '';
  for (const block of blocks) out += await run(block);
  assert.match(out, /orders \{ id: 42, status: 'shipped' \}/);
  assert.match(out, /state: 'scheduled'/);
  assert.match(out, /\{ ready: 0, scheduled: 1, processing: 0, dead: 0 \}/);
  assert.match(out, /\{ maxAgeS: 604800, maxCount: 100000 \}/);
  assert.match(out, /2026-03-08T07:00:00\.000Z/);
  assert.match(out, /made under token \d+/);
});

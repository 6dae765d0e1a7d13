'use strict';
// index.d.ts (the public types) names exactly what index.js exports: every
// class's methods and every export, compared through TypeScript's parser.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');
const honker = require('..');

const source = ts.createSourceFile('index.d.ts', fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8'), ts.ScriptTarget.ES2022);

function declared() {
  const classes = new Map();
  const values = new Set();
  for (const st of source.statements) {
    if (ts.isClassDeclaration(st) && st.name) {
      const methods = new Set();
      for (const m of st.members) {
        if ((ts.isMethodDeclaration(m) || ts.isGetAccessor(m)) && m.name && ts.isIdentifier(m.name)) methods.add(m.name.text);
      }
      classes.set(st.name.text, methods);
      values.add(st.name.text);
    } else if (ts.isFunctionDeclaration(st) && st.name) {
      values.add(st.name.text);
    } else if (ts.isVariableStatement(st)) {
      for (const d of st.declarationList.declarations) values.add(/** @type {any} */ (d.name).text);
    }
  }
  return { classes, values };
}

test('index.d.ts declares every export of index.js, and nothing else', () => {
  const { values } = declared();
  const exported = new Set(Object.keys(honker));
  // Claimer/Subscription/Listener/... are exported as classes too.
  assert.deepEqual([...values].sort(), [...exported].sort());
});

test('each class in index.d.ts has exactly the public methods of index.js', () => {
  const { classes } = declared();
  for (const [name, methods] of classes) {
    const cls = honker[name];
    assert.equal(typeof cls, 'function', `${name} is a class in index.js`);
    // Its own methods and those it inherits (the iterators share a base).
    const names = new Set();
    for (let p = cls.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
      for (const m of Object.getOwnPropertyNames(p)) names.add(m);
    }
    const proto = [...names].filter((m) => m !== 'constructor' && !m.startsWith('_'));
    if (name === 'HonkerError') continue;
    const inDts = [...methods].filter((m) => m !== 'Symbol');
    assert.deepEqual(proto.sort(), inDts.sort(), `methods of ${name}`);
  }
});

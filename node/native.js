'use strict';
// Loads the napi-rs addon built by `napi build --platform`
// (honker.<platform>-<arch>[-<abi>].node beside this file). HONKER_NODE_ADDON
// names another file.
const fs = require('node:fs');
const path = require('node:path');

function load() {
  const override = process.env.HONKER_NODE_ADDON;
  if (override) return require(path.resolve(override));
  const prefix = `honker.${process.platform}-${process.arch}`;
  const found = fs
    .readdirSync(__dirname)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.node'))
    .sort();
  if (found.length === 0) {
    throw new Error(
      `honker: no native addon ${prefix}*.node in ${__dirname}; build it with \`make node-test\` or \`npm run build\` in node/`,
    );
  }
  if (found.length === 1) return require(path.join(__dirname, found[0]));
  // Prefer the glibc build on glibc systems, musl elsewhere.
  const glibc = typeof process.report?.getReport === 'function'
    ? Boolean(/** @type {any} */ (process.report.getReport()).header?.glibcVersionRuntime)
    : true;
  const pick = found.find((f) => f.includes(glibc ? '-gnu' : '-musl')) ?? found[0];
  return require(path.join(__dirname, pick));
}

/** @type {typeof import('./native')} */
module.exports = load();

// Loads the napi-rs addon built by `napi build --platform`
// (honker.<platform>-<arch>[-<abi>].node in the package's folder; its types
// are generated into native.d.ts beside it). HONKER_NODE_ADDON names
// another file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as Native from '../native.js';

/** The package's folder (this file runs from its dist/). */
export const packageDir = path.resolve(__dirname, '..');

function load(): typeof Native {
  const override = process.env.HONKER_NODE_ADDON;
  if (override) return require(path.resolve(override));
  const prefix = `honker.${process.platform}-${process.arch}`;
  const found = fs
    .readdirSync(packageDir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.node'))
    .sort();
  if (found.length === 0) {
    throw new Error(
      `honker: no native addon ${prefix}*.node in ${packageDir}; build it with \`make node-test\` or \`npm run build\` in node/`,
    );
  }
  if (found.length === 1) return require(path.join(packageDir, found[0]));
  // Prefer the glibc build on glibc systems, musl elsewhere.
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  const glibc = report ? Boolean(report.header?.glibcVersionRuntime) : true;
  const pick = found.find((f) => f.includes(glibc ? '-gnu' : '-musl')) ?? found[0];
  return require(path.join(packageDir, pick));
}

export const native: typeof Native = load();
export type { NativeDatabase, NativeTx, NativeStop, NativeCursor, NativeListener, NativeWorker, JobData } from '../native.js';

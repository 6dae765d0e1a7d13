// The SQLite loadable extension, for your own better-sqlite3 or node:sqlite
// connection.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HonkerError } from './errors.js';
import { packageDir } from './native.js';

/** Where the SQLite loadable extension is: `$HONKER_EXT` if set, else the `libhonker_ext` library shipped in the package. */
export function extensionPath(): string {
  const env = process.env.HONKER_EXT;
  if (env) return env;
  for (const name of ['libhonker_ext.so', 'libhonker_ext.dylib', 'honker_ext.dll']) {
    const candidate = path.join(packageDir, name);
    if (fs.existsSync(candidate)) return candidate;
  }
  return path.join(packageDir, 'libhonker_ext.so');
}

/**
 * Loads honker's SQL functions (`honker_*`, `notify`) into your own
 * better-sqlite3 `Database` or node:sqlite `DatabaseSync` (opened with
 * `{ allowExtension: true }`), then creates or migrates honker's tables.
 * Use it *instead of* `open()` on the same file in one process (see the
 * README).
 */
export function loadExtension(conn: { loadExtension(path: string): unknown; prepare(sql: string): { get(...params: unknown[]): unknown } }): void {
  const file = extensionPath();
  if (!fs.existsSync(file)) {
    throw new HonkerError(`the honker SQLite extension is not at ${file}: build it with \`make ext\` (or set HONKER_EXT to libhonker_ext.so)`, 'invalid_argument');
  }
  if (conn == null || typeof conn.loadExtension !== 'function') {
    throw new HonkerError('loadExtension needs a better-sqlite3 Database or a node:sqlite DatabaseSync opened with { allowExtension: true }', 'invalid_argument');
  }
  conn.loadExtension(file);
  conn.prepare('SELECT honker_bootstrap()').get();
}

// The waiting side of the cross-language wake benchmark
// (bench/src/bin/wake.rs starts it): a Node listener on channel "bench".
// Prints "ready", then one line per notification, "<seq> <woken_ns>"
// (process.hrtime, CLOCK_MONOTONIC on Linux: the clock the Rust side reads),
// and exits after seq -1.
//
// Run by: make bench-wake-cross
import { createRequire } from 'node:module';

const require = createRequire(new URL('../node/', import.meta.url));
const honker = require('./dist/index.js');

const db = honker.open(process.argv[2]);
const listener = db.listen('bench');
process.stdout.write('ready\n');
for await (const n of listener) {
  process.stdout.write(`${n.payload} ${process.hrtime.bigint()}\n`);
  if (n.payload < 0) break;
}
db.close();

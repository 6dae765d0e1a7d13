// index.d.ts (the public types, written for readers) must describe what
// index.js does: `make node-test` derives declarations from index.js's
// JSDoc with `tsc --declaration` into .dtscheck/, and this file only
// compiles if each implementation type is assignable to its declaration.
import type * as Decl from '../index.js';
import type * as Impl from '../.dtscheck/index.js';

declare const impl: {
  database: Impl.Database;
  transaction: Impl.Transaction;
  queue: Impl.Queue;
  job: Impl.Job;
  claimer: Impl.Claimer;
  stream: Impl.Stream;
  subscription: Impl.Subscription;
  listener: Impl.Listener;
  lock: Impl.Lock;
  scheduler: Impl.Scheduler;
  error: Impl.HonkerError;
  open: typeof Impl.open;
  cronNext: typeof Impl.cronNext;
  extensionPath: typeof Impl.extensionPath;
  loadExtension: typeof Impl.loadExtension;
};

export const database: Decl.Database = impl.database;
export const transaction: Decl.Transaction = impl.transaction;
export const queue: Decl.Queue = impl.queue;
export const job: Decl.Job = impl.job;
export const claimer: Decl.Claimer = impl.claimer;
export const stream: Decl.Stream = impl.stream;
export const subscription: Decl.Subscription = impl.subscription;
export const listener: Decl.Listener = impl.listener;
export const lock: Decl.Lock = impl.lock;
export const scheduler: Decl.Scheduler = impl.scheduler;
export const error: Decl.HonkerError = impl.error;
export const open: typeof Decl.open = impl.open;
export const cronNext: typeof Decl.cronNext = impl.cronNext;
export const extensionPath: typeof Decl.extensionPath = impl.extensionPath;
export const loadExtension: typeof Decl.loadExtension = impl.loadExtension;

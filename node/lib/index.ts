/**
 * honker: durable queues, streams, pub/sub and cron on SQLite. One file,
 * zero servers.
 *
 * A thin layer over the native addon (the shared Rust engine): it encodes
 * payloads as JSON, takes options as objects, and provides transactions
 * and async iterators. Plain names return Promises and run off the main
 * thread; `...Sync` twins run on the calling thread. Every rule lives in
 * the engine.
 * @packageDocumentation
 */
import { native } from './native.js';

export { Database, open, type OpenOptions } from './database.js';
export { ERROR_CODES, HonkerError, type ErrorCode } from './errors.js';
export { extensionPath, loadExtension } from './extension.js';
export { Listener, type Notification } from './listener.js';
export { Lock, type LockInfo } from './lock.js';
export type { Row, TxOption, WaitOptions } from './options.js';
export { Claimer, Job, Queue, type EnqueueOptions, type JobInfo, type JobFilter, type QueueControls, type QueueOptions, type QueueRetention, type QueueRetentionOptions, type QueueStats, type QueueSummary } from './queue.js';
export { Scheduler, cronNext, type Schedule, type ScheduledTask } from './scheduler.js';
export { Stream, Subscription, type Event, type Retention, type RetentionOptions, type StreamSummary } from './stream.js';
export { Transaction } from './transaction.js';
export {
  Retry,
  Task,
  TaskContext,
  TaskHandle,
  Worker,
  type CancelReason,
  type RetryFunction,
  type TaskHandler,
  type TaskOptions,
  type WorkerOptions,
} from './worker.js';

/** The honker-core version this package was built with. */
export const VERSION: string = native.version();

/**
 * The stream every queue's lifecycle events are published to (when the
 * queue asks for them, `queue.setEvents(true)`), each keyed by its queue's
 * name: read it with `db.stream(EVENTS_STREAM)`.
 */
export const EVENTS_STREAM: string = native.eventsStream();

// Durable streams: publish, read, per-consumer offsets, subscribe, retention.
import { mapped } from './errors.js';
import { Iteration } from './iteration.js';
import { dumps, loads } from './json.js';
import type * as N from '../native.js';
import { options, renamed, type TxOption, type WaitOptions } from './options.js';
import { txOf } from './transaction.js';
import type { Database } from './database.js';

export interface Event<T = any> {
  offset: number;
  key: string | null;
  payload: T;
}

export interface RetentionOptions {
  /** Drop events older than this many seconds. */
  maxAgeS?: number | null;
  /** Keep at most this many of the newest events. */
  maxCount?: number | null;
}

/** How much is kept, of a stream or of a queue's completed or dead jobs (null: no such limit). */
export interface Retention {
  maxAgeS: number | null;
  maxCount: number | null;
}

function event<T>(e: N.EventData): Event<T> {
  return { offset: e.offset, key: e.key ?? null, payload: loads(e.payload) };
}

/** Retention options for the native layer (null fields become absent ones). @internal */
export function retentionArg(r: RetentionOptions | null | undefined): N.RetentionData | null {
  if (r == null) return null;
  const o = options('retention', r, ['maxAgeS', 'maxCount']);
  return { maxAgeS: o.maxAgeS ?? undefined, maxCount: o.maxCount ?? undefined };
}

/** @internal */
export function retentionOf(r: N.RetentionData): Retention {
  return { maxAgeS: r.maxAgeS ?? null, maxCount: r.maxCount ?? null };
}

/**
 * `for await (const event of stream.subscribe(consumer, { signal }))`:
 * replays from the consumer's saved offset, then waits for new events.
 * At-least-once: an event's offset is saved once you ask for the next one
 * (or leave the loop after it), so an event being handled when the process
 * dies is delivered again.
 */
export class Subscription<T = any> extends Iteration<Event<T>> {
  /** @internal */
  private readonly _s: Stream;
  /** @internal */
  private readonly _consumer: string;
  /** @internal */
  private readonly _timeoutS: number | undefined;
  /** @internal */
  private readonly _stop: N.NativeStop;
  /** @internal */
  private _cursor: N.NativeCursor | null = null;

  /** @internal */
  constructor(stream: Stream, consumer: string, opts?: WaitOptions) {
    const o = options('subscribe options', opts, ['signal', 'timeoutS', 'timeout']);
    const stop = stream.db._n.stopFlag();
    super(() => stop.stop(), o.signal);
    this._s = stream;
    this._consumer = consumer;
    this._timeoutS = renamed('subscribe options', o, 'timeout', 'timeoutS');
    this._stop = stop;
  }

  async next(): Promise<IteratorResult<Event<T>, undefined>> {
    if (this._done || this._stop.isStopped()) return this._end();
    const db = this._s.db;
    try {
      if (this._cursor === null) {
        this._cursor = await db._async(() => db._n.cursor(this._s.name, this._consumer));
      }
      const cursor = this._cursor;
      const ev = await db._async(async () => cursor.next(this._stop, this._timeoutS));
      if (ev === null) return this._end();
      return { done: false, value: event<T>(ev) };
    } catch (e) {
      return this._failed(e);
    }
  }

  /** Marks the event last handed out as handled and saves the offset now. */
  async commit(): Promise<void> {
    if (this._cursor) await mapped(this._cursor.commit());
  }

  /**
   * Ends the iteration, saving the offset of events moved past (all but the
   * one in hand); what `break` calls.
   */
  override async return(): Promise<IteratorReturnResult<undefined>> {
    return this._end();
  }

  /**
   * However the loop ends (abort, `break`, timeout), what the consumer moved
   * past is saved before the iteration reports its end.
   * @internal
   */
  private async _end(): Promise<IteratorReturnResult<undefined>> {
    const done = this._finish();
    const cursor = this._cursor;
    this._cursor = null;
    if (cursor && !this._s.db.isClosed) await mapped(cursor.flush()).catch(() => {});
    return done;
  }
}

/** A durable stream: an event log with per-consumer offsets. */
export class Stream {
  readonly db: Database;
  readonly name: string;

  /** @internal */
  constructor(db: Database, name: string) {
    this.db = db;
    this.name = name;
  }

  /** Appends an event; resolves to its offset. */
  async publish(payload: unknown, opts?: TxOption & { key?: string }): Promise<number> {
    const json = dumps(payload);
    const o = options('publish options', opts, ['key', 'tx']);
    const tx = txOf(o);
    return this.db._async(() => this.db._n.publish(false, this.name, json, o.key, tx), tx);
  }

  publishSync(payload: unknown, opts?: TxOption & { key?: string }): number {
    const json = dumps(payload);
    const o = options('publish options', opts, ['key', 'tx']);
    const tx = txOf(o);
    return this.db._sync(() => this.db._n.publish(true, this.name, json, o.key, tx));
  }

  /** Events after `offset`, oldest first. */
  async readSince<T = any>(offset: number, limit = 100): Promise<Event<T>[]> {
    const list = await this.db._async(() => this.db._n.readSince(false, this.name, offset, limit));
    return list.map((e) => event<T>(e));
  }

  readSinceSync<T = any>(offset: number, limit = 100): Event<T>[] {
    return this.db._sync(() => this.db._n.readSince(true, this.name, offset, limit)).map((e) => event<T>(e));
  }

  /** Saves `consumer`'s offset (only forward); resolves to whether it moved. */
  async saveOffset(consumer: string, offset: number, opts?: TxOption): Promise<boolean> {
    const tx = txOf(options('saveOffset options', opts, ['tx']));
    return this.db._async(() => this.db._n.saveOffset(false, this.name, consumer, offset, tx), tx);
  }

  saveOffsetSync(consumer: string, offset: number, opts?: TxOption): boolean {
    const tx = txOf(options('saveOffset options', opts, ['tx']));
    return this.db._sync(() => this.db._n.saveOffset(true, this.name, consumer, offset, tx));
  }

  async getOffset(consumer: string): Promise<number> {
    return this.db._async(() => this.db._n.getOffset(false, this.name, consumer));
  }

  getOffsetSync(consumer: string): number {
    return this.db._sync(() => this.db._n.getOffset(true, this.name, consumer));
  }

  /** Replays from the saved offset, then waits; at-least-once (see `Subscription`). */
  subscribe<T = any>(consumer: string, opts?: WaitOptions): Subscription<T> {
    return new Subscription<T>(this, consumer, opts);
  }

  /** The newest event's offset (0 if the stream is empty). */
  async lastOffset(): Promise<number> {
    return this.db._async(() => this.db._n.lastOffset(false, this.name));
  }

  lastOffsetSync(): number {
    return this.db._sync(() => this.db._n.lastOffset(true, this.name));
  }

  /**
   * Stores (in the file, for every process) how much of the stream to keep:
   * events younger than `maxAgeS` seconds and at most the `maxCount`
   * newest; both apply when both are given, neither keeps everything.
   * Publishing applies it every 128 offsets; `prune()` applies it now.
   */
  async setRetention(retention?: RetentionOptions): Promise<void> {
    const r = retentionArg(retention);
    return this.db._async(() => this.db._n.setRetention(false, this.name, r));
  }

  setRetentionSync(retention?: RetentionOptions): void {
    const r = retentionArg(retention);
    this.db._sync(() => this.db._n.setRetention(true, this.name, r));
  }

  /** The stored retention (null: no such limit). */
  async retention(): Promise<Retention> {
    return retentionOf(await this.db._async(() => this.db._n.retention(false, this.name)));
  }

  retentionSync(): Retention {
    return retentionOf(this.db._sync(() => this.db._n.retention(true, this.name)));
  }

  /** Applies the retention now; resolves to how many events were removed. */
  async prune(): Promise<number> {
    return this.db._async(() => this.db._n.prune(this.name));
  }
}

/** A stream as an operator sees it (`db.streams()`). */
export interface StreamSummary {
  name: string;
  /** The offset of its newest event (0 if it has none). */
  lastOffset: number;
  /** Each consumer's saved offset and lag (the stream's events after it), by consumer name. */
  consumers: Record<string, { offset: number; lag: number }>;
}

/** @internal */
export function streamSummary(s: {
  name: string;
  lastOffset: number;
  consumers: { consumer: string; offset: number; lag: number }[];
}): StreamSummary {
  return {
    name: s.name,
    lastOffset: s.lastOffset,
    consumers: Object.fromEntries(s.consumers.map((c) => [c.consumer, { offset: c.offset, lag: c.lag }])),
  };
}

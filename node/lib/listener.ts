// Ephemeral pub/sub: notifications committed after `listen`.
import { fix } from './errors.js';
import { DONE, Iteration } from './iteration.js';
import { loads } from './json.js';
import type * as N from '../native.js';
import { options } from './options.js';
import type { Database } from './database.js';

export interface Notification<T = any> {
  id: number;
  channel: string;
  payload: T;
}

function notification<T>(n: N.NotificationData): Notification<T> {
  return { id: n.id, channel: n.channel, payload: loads(n.payload) };
}

/**
 * `for await (const n of db.listen(channel, { signal }))`: notifications
 * committed after `listen` was called, in order. Aborting ends it.
 */
export class Listener<T = any> extends Iteration<Notification<T>> {
  /** @internal */
  private readonly _native: N.NativeListener;

  /** @internal */
  constructor(db: Database, channel: string, opts?: { signal?: AbortSignal }) {
    const o = options('listen options', opts, ['signal']);
    const listener = db._sync(() => db._n.listen(channel));
    super(() => listener.close(), o.signal);
    this._native = listener;
  }

  async next(): Promise<IteratorResult<Notification<T>, undefined>> {
    if (this._done) return DONE;
    let n: N.NotificationData | null;
    try {
      n = await this._native.recv(null);
    } catch (e) {
      return this._failed(e);
    }
    if (n === null) return this._finish();
    return { done: false, value: notification<T>(n) };
  }

  /** The next notification within `timeoutS` seconds, or null. */
  async recv(timeoutS: number): Promise<Notification<T> | null> {
    let n: N.NotificationData | null;
    try {
      n = await this._native.recv(timeoutS);
    } catch (e) {
      throw fix(e);
    }
    return n === null ? null : notification<T>(n);
  }

  /** Stops listening. */
  close(): void {
    this._finish();
  }
}

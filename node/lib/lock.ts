// Advisory locks, renewed in the background while held.
import { HonkerError, mapped } from './errors.js';
import type * as N from '../native.js';
import type { Database } from './database.js';

/** Who holds a lock. */
export interface LockInfo {
  name: string;
  owner: string;
  fencingToken: number;
  /** When it lapses unless renewed, in epoch seconds. */
  expiresAt: number;
}

/** @internal */
export function lockInfo(h: N.LockHolderData | null | undefined): LockInfo | null {
  return h == null ? null : { name: h.name, owner: h.owner, fencingToken: h.token, expiresAt: h.expiresAtMs / 1000 };
}

/**
 * A held advisory lock. While held, a native thread renews it every third
 * of its TTL (off the event loop), so work longer than the TTL keeps it; if
 * a renewal finds it gone anyway (the process stalled past the TTL and
 * another owner took it), `lost` turns true and `check()` throws code
 * `lock_lost`.
 */
export class Lock {
  /** @internal */
  private readonly _db: Database;
  readonly name: string;
  readonly owner: string;
  /** Increases on every acquisition of any lock: pass it along to fence stale holders. */
  readonly fencingToken: number;
  /** @internal */
  private _held = true;
  /** @internal */
  private readonly _keeper: N.NativeKeeper;

  /** @internal */
  constructor(db: Database, name: string, owner: string, token: number, ttlS: number) {
    this._db = db;
    this.name = name;
    this.owner = owner;
    this.fencingToken = token;
    this._keeper = db._sync(() => db._n.keepLock(name, token, ttlS));
  }

  /** True once a renewal (or `heartbeat`) found the lock gone. */
  get lost(): boolean {
    return this._keeper.isLost();
  }

  /** Throws (code `lock_lost`) if the lock was found gone. Reads no file. */
  check(): void {
    if (this.lost) {
      throw new HonkerError(`lock ${JSON.stringify(this.name)} was lost (fencing token ${this.fencingToken} no longer holds it)`, 'lock_lost');
    }
  }

  /**
   * Extends the lock to `ttlS` seconds from now (and renews with that TTL
   * from then on); false if it was lost.
   */
  async heartbeat(ttlS: number): Promise<boolean> {
    const held = await this._db._async(() => this._db._n.renewLock(this.name, this.fencingToken, ttlS));
    if (held) this._keeper.setTtl(ttlS);
    else this._keeper.markLost();
    return held;
  }

  /** Releases it; false if it had already lapsed or been lost. */
  async release(): Promise<boolean> {
    if (!this._held) return false;
    this._held = false;
    await mapped(this._keeper.stop(false));
    return this._db._async(() => this._db._n.releaseLock(false, this.name, this.fencingToken));
  }

  releaseSync(): boolean {
    if (!this._held) return false;
    this._held = false;
    this._keeper.stop(true);
    return this._db._sync(() => this._db._n.releaseLock(true, this.name, this.fencingToken));
  }
}

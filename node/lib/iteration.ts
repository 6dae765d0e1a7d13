// What the `for await` iterators (Claimer, Subscription, Listener) share.
import { fix, HonkerError } from './errors.js';

/** @internal */
export const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * Ends an iterator when its signal aborts; returns what removes the listener.
 * @internal
 */
export function onAbort(signal: AbortSignal | undefined, onAbort: () => void): () => void {
  if (signal == null) return () => {};
  if (signal.aborted) {
    onAbort();
    return () => {};
  }
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/**
 * What the `for await` iterators share: ending it (an AbortSignal, `break`,
 * `return()`) stops the native wait at once, and a database closed under it
 * ends it quietly.
 */
export abstract class Iteration<T> implements AsyncIterableIterator<T> {
  /** @internal */
  protected _done = false;
  /** @internal */
  private readonly _halt: () => void;
  /** @internal */
  private _unlisten: () => void = () => {};

  /**
   * @param halt stops the native wait
   * @internal
   */
  constructor(halt: () => void, signal: AbortSignal | undefined) {
    this._halt = halt;
    // An already aborted signal ends the iteration here and now.
    this._unlisten = onAbort(signal, () => this._finish());
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next item (each kind waits for its own). */
  abstract next(): Promise<IteratorResult<T, undefined>>;

  /** Ends the iteration (what `break` in a `for await` loop calls). */
  async return(): Promise<IteratorReturnResult<undefined>> {
    return this._finish();
  }

  /** @internal */
  protected _finish(): IteratorReturnResult<undefined> {
    this._done = true;
    this._halt();
    this._unlisten();
    return DONE;
  }

  /**
   * Ends the iteration on a failed wait: quietly if the database was closed.
   * @internal
   */
  protected _failed(e: unknown): IteratorReturnResult<undefined> {
    this._finish();
    const err = fix(e);
    if (err instanceof HonkerError && err.code === 'closed') return DONE;
    throw err;
  }
}

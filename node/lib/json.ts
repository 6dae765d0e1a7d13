import { HonkerError } from './errors.js';

/**
 * A value as the JSON text honker stores (`undefined` is `null`).
 * @internal
 */
export function dumps(value: unknown, what = 'payload'): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (e) {
    throw new HonkerError(`invalid JSON in \`${what}\`: ${(e as Error).message}`, 'invalid_json');
  }
  if (text === undefined) {
    throw new HonkerError(`invalid JSON in \`${what}\`: ${typeof value} is not JSON`, 'invalid_json');
  }
  return text;
}

/**
 * Stored JSON text as a value.
 * @internal
 */
export function loads(text: string): any {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HonkerError(`cannot decode payload: ${(e as Error).message}`, 'decode');
  }
}

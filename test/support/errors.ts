/** Assertions on the library's coded errors, shared by the unit tests. */
import { expect } from 'vitest';
import { ColbertError, type ErrorCode } from '../../src/errors.ts';

/** Awaits `promise`, expects a ColbertError with `code`, and returns it; fails if the call succeeds. */
export async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<ColbertError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ColbertError);
    expect((err as ColbertError).code).toBe(code);
    return err as ColbertError;
  }
  throw new Error(`expected a ColbertError ${code}, but the call succeeded`);
}

/**
 * The code of the ColbertError that `call` rejects or throws with (a function also catches
 * synchronous throws), or 'no error'. Anything thrown that is not a ColbertError fails the test.
 */
export async function codeOf(call: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof call === 'function' ? call() : call);
  } catch (err) {
    expect(err).toBeInstanceOf(ColbertError);
    return (err as ColbertError).code;
  }
  return 'no error';
}

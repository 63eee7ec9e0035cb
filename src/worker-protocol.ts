/**
 * What both sides of the worker boundary agree on: the remote engine's shape, and a comlink
 * transfer handler that carries {@link ColbertError}s across with their `code` and `details`
 * (comlink's default handler keeps only name, message and stack).
 */
import * as Comlink from 'comlink';
import { ColbertError, isColbertError, type ColbertErrorData } from './errors.ts';

interface SerializedThrow {
  colbert: boolean;
  value: ColbertErrorData | { name: string; message: string; stack?: string | undefined } | unknown;
}

let installed = false;

/** Installs the error transfer handler in this realm (idempotent). Call on both sides. */
export function installErrorTransfer(): void {
  if (installed) return;
  installed = true;
  // comlink marks thrown values with a private symbol; its own handler knows how to spot them.
  const builtin = Comlink.transferHandlers.get('throw');
  if (!builtin) throw new ColbertError('INTERNAL', "comlink has no 'throw' transfer handler to extend.");
  const handler: Comlink.TransferHandler<{ value: unknown }, SerializedThrow> = {
    canHandle: (value: unknown): value is { value: unknown } => builtin.canHandle(value),
    serialize({ value }) {
      if (isColbertError(value)) return [{ colbert: true, value: (value as ColbertError).toJSON() }, []];
      if (value instanceof Error) return [{ colbert: false, value: { name: value.name, message: value.message, stack: value.stack } }, []];
      return [{ colbert: false, value }, []];
    },
    deserialize(serialized) {
      if (serialized.colbert) throw ColbertError.fromJSON(serialized.value as ColbertErrorData);
      const v = serialized.value as { name?: string; message?: string; stack?: string };
      if (v && typeof v === 'object' && typeof v.message === 'string') {
        throw Object.assign(new Error(v.message), { name: v.name ?? 'Error', stack: v.stack });
      }
      throw serialized.value;
    },
  };
  Comlink.transferHandlers.set('throw', handler as Comlink.TransferHandler<unknown, unknown>);
}

/**
 * Document metadata is JSON data: it is stored in IndexedDB (structured clone), returned with
 * hits, and written into the portable export file as JSON. Whatever passes {@link checkMetadata}
 * survives all three unchanged; anything else (BigInt, functions, symbols, cycles, Dates, Maps,
 * class instances, NaN) is refused at `add` with INVALID_METADATA, before anything is stored,
 * instead of breaking `stats()` or `exportIndex()` later or failing to cross to the worker.
 */
import { ColbertError } from '../errors.ts';
import type { Metadata } from '../types.ts';

/** Deepest nesting accepted (a guard against runaway recursion, far beyond real metadata). */
export const MAX_METADATA_DEPTH = 64;

/** A plain object of any realm (`{}` or `Object.create(null)`), not an array or class instance. */
function isPlainObject(value: object): boolean {
  if (Object.prototype.toString.call(value) !== '[object Object]') return false;
  const proto = Object.getPrototypeOf(value) as object | null;
  return proto === null || Object.getPrototypeOf(proto) === null;
}

function refuse(id: string, path: string, problem: string, hint = ''): ColbertError {
  return new ColbertError(
    'INVALID_METADATA',
    `Metadata of "${id}" ${path === 'metadata' ? 'is' : `has ${path} as`} ${problem}; metadata must be JSON data (strings, finite numbers, booleans, null, arrays and plain objects) so that it can be stored, returned with hits and exported.${hint ? ` ${hint}` : ''} Nothing was added.`,
    { id, path },
  );
}

function describe(value: unknown): string {
  if (typeof value === 'bigint') return 'a BigInt';
  if (typeof value === 'symbol') return 'a Symbol';
  if (typeof value === 'function') return 'a function';
  if (value === undefined) return 'undefined';
  if (typeof value === 'number') return String(value);
  const tag = Object.prototype.toString.call(value).slice(8, -1);
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return `a ${typeof name === 'string' && name !== '' && name !== 'Object' ? name : tag}`;
}

function hintFor(value: unknown): string {
  if (typeof value === 'bigint') return 'Store it as a string (value.toString()).';
  if (value instanceof Date) return 'Store a string (date.toISOString()) or a number (date.getTime()).';
  if (typeof value === 'number') return 'Store null or a string instead.';
  return '';
}

function walk(value: unknown, id: string, path: string, ancestors: object[], inArray: boolean): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw refuse(id, path, describe(value), hintFor(value));
      return;
    case 'undefined':
      // An object property that is undefined is simply absent in JSON; an array slot is not.
      if (inArray) throw refuse(id, path, 'undefined (or a hole)', 'Use null for a missing array element.');
      return;
    case 'object':
      break;
    default:
      throw refuse(id, path, describe(value), hintFor(value));
  }
  if (value === null) return;
  if (ancestors.includes(value)) throw refuse(id, path, 'a reference to itself (a cycle)', 'Metadata must be a tree; copy shared parts instead.');
  if (ancestors.length >= MAX_METADATA_DEPTH) throw refuse(id, path, `nested deeper than ${MAX_METADATA_DEPTH} levels`);
  ancestors.push(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) walk(value[i], id, `${path}[${i}]`, ancestors, true);
  } else {
    if (!isPlainObject(value)) throw refuse(id, path, describe(value), hintFor(value));
    if (Object.getOwnPropertySymbols(value).length) throw refuse(id, path, 'an object with Symbol keys', 'Use string keys.');
    for (const key of Object.keys(value)) walk((value as Record<string, unknown>)[key], id, `${path}.${key}`, ancestors, false);
  }
  ancestors.pop();
}

/** Validates one document's metadata; returns it, or undefined when there is none. Throws INVALID_METADATA. */
export function checkMetadata(metadata: unknown, id: string): Metadata | undefined {
  if (metadata === undefined) return undefined;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata) || !isPlainObject(metadata)) {
    const what = metadata === null ? 'null' : Array.isArray(metadata) ? 'an array' : typeof metadata === 'string' ? 'a string' : describe(metadata);
    throw refuse(id, 'metadata', what, 'It must be a plain object such as { title: "..." }.');
  }
  walk(metadata, id, 'metadata', [], false);
  return metadata as Metadata;
}

/**
 * Validates the metadata of a batch for `add` / `addEmbeddings` before it is posted to the
 * worker. Only metadata is checked here; the engine validates everything else (and the
 * metadata again, for in-thread use).
 */
export function checkInputMetadata(items: unknown): void {
  if (!Array.isArray(items)) return;
  items.forEach((item: unknown, index) => {
    if (typeof item !== 'object' || item === null) return;
    const { id, metadata } = item as { id?: unknown; metadata?: unknown };
    checkMetadata(metadata, typeof id === 'string' && id !== '' ? id : `item ${index}`);
  });
}

/** JSON of stored metadata, or undefined when it is not JSON data (written by an older version). */
export function metadataJson(metadata: Metadata | undefined): string | undefined {
  try {
    return JSON.stringify(metadata ?? null);
  } catch {
    return undefined;
  }
}

/**
 * Metadata filters: a small JSON query language compiled once per query into a predicate, then
 * into the set of documents a search may return. Scorers (and candidate generation) receive only
 * that allowed set; they never learn why a document is in it.
 *
 * Grammar (MongoDB-like):
 * - `{ "a.b": value }`: equality at a dotted path (a primitive value: string, number, boolean, null);
 * - `{ path: { $eq, $ne, $in: [...], $nin: [...], $gt, $gte, $lt, $lte, $exists: boolean } }`,
 *   several operators on one path all apply; ranges take numbers or ISO 8601 dates (compared as
 *   instants; a stored value that is not a date of the same kind never matches);
 * - `{ $and: [f, ...] }`, `{ $or: [f, ...] }`, `{ $not: f }`; several keys in one object are ANDed.
 * An array stored at a path matches when any of its elements does ($ne and $nin: when none does).
 * A missing path matches only `$ne`, `$nin` and `$exists: false`.
 */
import { ColbertError } from '../errors.ts';
import type { Metadata } from '../types.ts';

/** A primitive a filter compares with. */
export type FilterValue = string | number | boolean | null;

/** The operators of one path. */
export interface FilterCondition {
  $eq?: FilterValue;
  $ne?: FilterValue;
  $in?: FilterValue[];
  $nin?: FilterValue[];
  $gt?: number | string;
  $gte?: number | string;
  $lt?: number | string;
  $lte?: number | string;
  $exists?: boolean;
}

/** A metadata filter (see the module header, or the README's Filters section). */
export type Filter = { $and?: Filter[]; $or?: Filter[]; $not?: Filter } & { [path: string]: FilterValue | FilterCondition | Filter[] | Filter | undefined };

/** A compiled filter: true when a document's metadata passes. */
export type FilterPredicate = (metadata: Metadata | undefined) => boolean;

const OPERATORS = new Set(['$eq', '$ne', '$in', '$nin', '$gt', '$gte', '$lt', '$lte', '$exists']);
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

function invalid(path: string, message: string): ColbertError {
  return new ColbertError('INVALID_FILTER', `Invalid filter at ${path || 'the top level'}: ${message}`, { path });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function isPrimitive(value: unknown): value is FilterValue {
  return value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/** The value at a dotted path, or undefined when a step is missing or not an object. */
function resolvePath(metadata: Metadata | undefined, steps: readonly string[]): unknown {
  let value: unknown = metadata;
  for (const step of steps) {
    if (!isPlainObject(value)) return undefined;
    value = value[step];
  }
  return value;
}

/** A stored value as an instant (ms), for date ranges: an ISO string or a Date. */
function asInstant(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string' && ISO_DATE.test(value)) {
    const t = Date.parse(value);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

function equals(stored: unknown, wanted: FilterValue): boolean {
  if (Array.isArray(stored)) return stored.some((v) => v === wanted);
  if (stored === undefined) return false;
  if (stored instanceof Date && typeof wanted === 'string') return asInstant(wanted) === stored.getTime();
  return stored === wanted;
}

type Test = (stored: unknown) => boolean;

function compileRange(op: string, operand: unknown, path: string): Test {
  let key: (v: unknown) => number | undefined;
  let bound: number;
  if (typeof operand === 'number' && Number.isFinite(operand)) {
    bound = operand;
    key = (v) => (typeof v === 'number' && !Number.isNaN(v) ? v : undefined);
  } else {
    const t = asInstant(operand);
    if (t === undefined) throw invalid(path, `${op} takes a finite number or an ISO 8601 date string (like "2024-01-31" or "2024-01-31T12:00:00Z"); got ${JSON.stringify(operand)}.`);
    bound = t;
    key = asInstant;
  }
  const cmp: (a: number) => boolean = op === '$gt' ? (a) => a > bound : op === '$gte' ? (a) => a >= bound : op === '$lt' ? (a) => a < bound : (a) => a <= bound;
  const one = (v: unknown) => {
    const k = key(v);
    return k !== undefined && cmp(k);
  };
  return (stored) => (Array.isArray(stored) ? stored.some(one) : one(stored));
}

function compileList(op: '$in' | '$nin', operand: unknown, path: string): Test {
  if (!Array.isArray(operand)) throw invalid(path, `${op} takes an array of strings, numbers, booleans or null; got ${JSON.stringify(operand)}.`);
  operand.forEach((v, i) => {
    if (!isPrimitive(v)) throw invalid(`${path}[${i}]`, `${op} values must be strings, finite numbers, booleans or null; got ${JSON.stringify(v)}.`);
  });
  const values = operand as FilterValue[];
  const any: Test = (stored) => values.some((v) => equals(stored, v));
  return op === '$in' ? any : (stored) => !any(stored);
}

function compileCondition(condition: unknown, path: string): Test {
  if (isPrimitive(condition)) return (stored) => equals(stored, condition);
  if (!isPlainObject(condition)) {
    throw invalid(path, `a path takes a string, number, boolean or null (equality) or an object of operators ($eq, $ne, $in, $nin, $gt, $gte, $lt, $lte, $exists); got ${Array.isArray(condition) ? 'an array (use $in)' : JSON.stringify(condition) ?? String(condition)}.`);
  }
  const keys = Object.keys(condition);
  if (keys.length === 0) throw invalid(path, 'an empty operator object; give at least one of $eq, $ne, $in, $nin, $gt, $gte, $lt, $lte, $exists.');
  const tests: Test[] = keys.map((op): Test => {
    const operand = condition[op];
    const at = `${path}.${op}`;
    if (!OPERATORS.has(op)) {
      throw invalid(at, op.startsWith('$') ? `unknown operator ${op}; use $eq, $ne, $in, $nin, $gt, $gte, $lt, $lte or $exists.` : `a nested object is not a value to compare with; use a dotted path ("${path}.${op}") instead.`);
    }
    switch (op) {
      case '$eq':
      case '$ne': {
        if (!isPrimitive(operand)) throw invalid(at, `${op} takes a string, finite number, boolean or null; got ${JSON.stringify(operand)}.`);
        return op === '$eq' ? (stored) => equals(stored, operand) : (stored) => !equals(stored, operand);
      }
      case '$in':
      case '$nin':
        return compileList(op, operand, at);
      case '$exists': {
        if (typeof operand !== 'boolean') throw invalid(at, `$exists takes true or false; got ${JSON.stringify(operand)}.`);
        return (stored) => (stored !== undefined) === operand;
      }
      default:
        return compileRange(op, operand, at);
    }
  });
  return tests.length === 1 ? tests[0]! : (stored) => tests.every((t) => t(stored));
}

function compileNode(filter: unknown, path: string): FilterPredicate {
  if (!isPlainObject(filter)) throw invalid(path, `a filter must be an object like { "tag": "work" } or { "$or": [...] }; got ${Array.isArray(filter) ? 'an array' : JSON.stringify(filter) ?? String(filter)}.`);
  const parts: FilterPredicate[] = Object.keys(filter).map((key): FilterPredicate => {
    const value = filter[key];
    const at = path ? `${path}.${key}` : key;
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(value) || value.length === 0) throw invalid(at, `${key} takes a non-empty array of filters; got ${JSON.stringify(value)}.`);
      const subs = value.map((f, i) => compileNode(f, `${at}[${i}]`));
      return key === '$and' ? (m) => subs.every((s) => s(m)) : (m) => subs.some((s) => s(m));
    }
    if (key === '$not') {
      const sub = compileNode(value, at);
      return (m) => !sub(m);
    }
    if (key.startsWith('$')) throw invalid(at, `unknown operator ${key} at the filter level; use $and, $or, $not, or a metadata path.`);
    const steps = key.split('.');
    if (steps.some((s) => s === '')) throw invalid(at, `"${key}" is not a valid dotted path (empty step).`);
    const test = compileCondition(value, at);
    return (m) => test(resolvePath(m, steps));
  });
  if (parts.length === 0) return () => true;
  return parts.length === 1 ? parts[0]! : (m) => parts.every((p) => p(m));
}

/**
 * Compiles a filter into a predicate over a document's metadata, validating all of it first: a
 * malformed filter is INVALID_FILTER whose message and `details.path` name the bad part (like
 * `$or[1].year.$gt`). An empty filter `{}` lets every document through.
 */
export function compileFilter(filter: unknown): FilterPredicate {
  return compileNode(filter, '');
}

/**
 * The ids a predicate lets through, from every stored document's metadata: the allowed set a
 * scorer or a candidate generator restricts itself to.
 */
export function allowedIds(predicate: FilterPredicate, documents: Iterable<readonly [string, Metadata | undefined]>): Set<string> {
  const allowed = new Set<string>();
  for (const [id, metadata] of documents) if (predicate(metadata)) allowed.add(id);
  return allowed;
}

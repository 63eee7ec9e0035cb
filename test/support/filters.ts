/**
 * Random metadata and random filters over it, for the filter property tests (Node and browser;
 * no Node imports).
 */
import type { Filter } from '../../src/filter/index.ts';
import type { Metadata } from '../../src/types.ts';

const TAGS = ['work', 'home', 'draft', 'legal'];
const LANGS = ['en', 'fr', 'de'];

function pick<T>(list: readonly T[], next: () => number): T {
  return list[Math.floor(next() * list.length)]!;
}

/** Metadata with some fields missing: tag, year, date (ISO), nested.score, tags (array), flag, lang. */
export function randomMetadata(next: () => number): Metadata | undefined {
  if (next() < 0.05) return undefined;
  const m: Metadata = {};
  if (next() < 0.9) m['tag'] = pick(TAGS, next);
  if (next() < 0.85) m['year'] = 2015 + Math.floor(next() * 12);
  if (next() < 0.8) m['date'] = new Date(Date.UTC(2020, 0, 1) + Math.floor(next() * 2000) * 86_400_000).toISOString().slice(0, next() < 0.5 ? 10 : 24);
  if (next() < 0.8) m['nested'] = next() < 0.9 ? { score: Math.round(next() * 100) / 10, lang: pick(LANGS, next) } : 'not an object';
  if (next() < 0.6) m['tags'] = TAGS.filter(() => next() < 0.4);
  if (next() < 0.7) m['flag'] = next() < 0.5;
  return m;
}

/** A random well-formed filter, up to `depth` levels of $and/$or/$not. */
export function randomFilter(next: () => number, depth = 2): Filter {
  const r = next();
  if (depth > 0 && r < 0.25) {
    const n = 1 + Math.floor(next() * 3);
    const parts = Array.from({ length: n }, () => randomFilter(next, depth - 1));
    return next() < 0.5 ? { $and: parts } : { $or: parts };
  }
  if (depth > 0 && r < 0.32) return { $not: randomFilter(next, depth - 1) };
  const leaf = Math.floor(next() * 11);
  switch (leaf) {
    case 0:
      return { tag: pick(TAGS, next) };
    case 1:
      return { tag: { $in: TAGS.filter(() => next() < 0.5) } };
    case 2:
      return { tags: { $nin: [pick(TAGS, next)] } };
    case 3:
      return { year: { $gte: 2015 + Math.floor(next() * 12), $lt: 2020 + Math.floor(next() * 8) } };
    case 4:
      return { year: { $gt: 2015 + Math.floor(next() * 12) } };
    case 5:
      return { date: { $lte: `202${Math.floor(next() * 6)}-0${1 + Math.floor(next() * 9)}-15` } };
    case 6:
      return { 'nested.score': { $gt: Math.round(next() * 100) / 10 } };
    case 7:
      return { 'nested.lang': pick(LANGS, next), flag: next() < 0.5 };
    case 8:
      return { flag: { $exists: next() < 0.5 } };
    case 9:
      return { tags: pick(TAGS, next) };
    default:
      return { tag: { $ne: pick(TAGS, next) } };
  }
}

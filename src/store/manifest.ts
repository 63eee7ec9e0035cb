/**
 * The manifest every index carries: which model built its vectors (name, revision, a content
 * hash of the files that decide the vectors, and the encoding settings that matter), the storage
 * precision, and the format version. Vectors from different models must never be mixed: opening
 * or importing an index with another model is the coded error INDEX_MODEL_MISMATCH.
 */
import { ColbertError } from '../errors.ts';
import type { VectorPrecision } from './precision.ts';

/**
 * Version of the stored layout (IndexedDB schema and portable file). A change comes with a
 * migration in idb.ts `upgrade()` and a reader for the older files in portable.ts.
 * 1: vectors, documents, texts (and postings in IndexedDB); 2: + the compressed index's codecs
 * and codes (IndexedDB schema 3; `codec` and `codes` sections in files); 3: the codec's centroids
 * as fp16 (`centroidBits: 16`; format 2 files and records hold fp32 ones, read and rounded) and,
 * in IndexedDB, rows in chunks of whole documents (schema 4). Files without codes stay format 1.
 */
export const FORMAT_VERSION = 3;
/** The format version of files without codes: written so, older colbert-web versions still read them. */
export const FORMAT_VERSION_WITHOUT_CODES = 1;

/** What decides a model's token vectors. Plain data (structured-clone and JSON safe). */
export interface ModelFingerprint {
  /** Repo id, URL or path the model was loaded from (for messages; see {@link sameModel}). */
  model: string;
  /** Hub revision, when one was given. */
  revision?: string;
  /** Content hash of the tokenizer and the Dense head (or the config, for heads inside the graph). */
  content?: string;
  layout: string;
  dim: number;
  /** Pooling of token vectors; 'none' (one vector per kept token) is all this library does. */
  pooling: 'none';
  /** The encoding recipe: any difference changes the vectors. */
  encoding: {
    queryPrompt: string;
    documentPrompt: string;
    queryLength: number;
    documentLength: number;
    queryMarkerId: number;
    documentMarkerId: number;
    maskId: number;
    doQueryExpansion: boolean;
    attendToExpansionTokens: boolean;
    expansion: string;
    skiplist: string[];
  };
}

/** The manifest of a stored or exported index. */
export interface IndexManifest {
  format: number;
  fingerprint: ModelFingerprint;
  precision: VectorPrecision;
  /** Token vector dimension (equals `fingerprint.dim`). */
  dim: number;
  documents: number;
  tokens: number;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
}

/** A short human name for a fingerprint, e.g. `owner/name@main (content 1a2b3c4d…)`. */
export function describeModel(f: ModelFingerprint): string {
  const rev = f.revision !== undefined ? `@${f.revision}` : '';
  const content = f.content !== undefined ? `, content ${f.content.slice(0, 8)}` : '';
  return `${f.model}${rev} (${f.layout}, dim ${f.dim}${content})`;
}

/**
 * The fields in which two fingerprints differ in a way that changes vectors; empty when they
 * match. With content hashes on both sides, names and revisions may differ (the same files
 * served from a path, a URL or the Hub); without, name and revision must match.
 */
export function fingerprintDifferences(stored: ModelFingerprint, current: ModelFingerprint): string[] {
  const diff: string[] = [];
  if (stored.content !== undefined && current.content !== undefined) {
    if (stored.content !== current.content) diff.push('content');
  } else {
    if (stored.model !== current.model) diff.push('model');
    if (stored.revision !== current.revision) diff.push('revision');
  }
  if (stored.dim !== current.dim) diff.push('dim');
  if (stored.pooling !== current.pooling) diff.push('pooling');
  for (const key of Object.keys(stored.encoding) as (keyof ModelFingerprint['encoding'])[]) {
    if (JSON.stringify(stored.encoding[key]) !== JSON.stringify(current.encoding[key])) diff.push(`encoding.${key}`);
  }
  return diff;
}

/** Throws INDEX_MODEL_MISMATCH naming both models when `current` cannot use vectors built by `stored`. */
export function checkFingerprint(stored: ModelFingerprint, current: ModelFingerprint, what: string): void {
  const diff = fingerprintDifferences(stored, current);
  if (!diff.length) return;
  throw new ColbertError(
    'INDEX_MODEL_MISMATCH',
    `${what} was built with ${describeModel(stored)}, but this search runs ${describeModel(current)} (they differ in ${diff.join(', ')}). ` +
      'Vectors of different models cannot be mixed: open it with the model that built it, or use another index name (or deleteIndex() and rebuild).',
    { stored, current, differences: diff },
  );
}

/** Validates a manifest read from storage or a file; throws INDEX_CORRUPT when it is not one. */
export function checkManifest(value: unknown, what: string): IndexManifest {
  const m = value as Partial<IndexManifest> | null;
  const ok =
    typeof m === 'object' && m !== null &&
    typeof m.format === 'number' &&
    typeof m.fingerprint === 'object' && m.fingerprint !== null &&
    typeof m.fingerprint.model === 'string' && typeof m.fingerprint.encoding === 'object' &&
    (m.precision === 'fp32' || m.precision === 'fp16' || m.precision === 'int8') &&
    Number.isInteger(m.dim) && (m.dim as number) > 0;
  if (!ok) throw new ColbertError('INDEX_CORRUPT', `${what} has no valid manifest; it is not a colbert-web index or it is damaged.`);
  if (m.format! > FORMAT_VERSION) {
    throw new ColbertError('INDEX_FORMAT_UNSUPPORTED', `${what} has format version ${m.format}; this colbert-web reads up to ${FORMAT_VERSION}. Upgrade colbert-web.`, { format: m.format, supported: FORMAT_VERSION });
  }
  return m as IndexManifest;
}

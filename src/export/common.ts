/**
 * What every export writer shares: the documents of a store's snapshot one at a time (vectors
 * decoded to float32), number formatting, and the shape of an export.
 */
import { ColbertError } from '../errors.ts';
import { decodeRows } from '../store/precision.ts';
import type { IndexSnapshot } from '../store/types.ts';
import type { Metadata } from '../types.ts';

/** The engines an index can be exported to. */
export type ExportTarget = 'qdrant' | 'vespa' | 'next-plaid' | 'elasticsearch';
export const EXPORT_TARGETS: readonly ExportTarget[] = ['qdrant', 'vespa', 'next-plaid', 'elasticsearch'];

/** Options of an export. */
export interface ExportOptions {
  /** Collection / index / schema name on the server. Default 'colbert'. */
  name?: string;
  /** Documents per request body for the batched targets (Qdrant, next-plaid). Default 64. */
  batchSize?: number;
  /** Leave the document texts out (they are included by default, for the engines' own BM25). */
  omitText?: boolean;
}

/** One request to send to the server. */
export interface ServerRequest {
  method: 'PUT' | 'POST';
  /** Path on the server (Vespa's schema is a file of the application package instead). */
  path: string;
  /** The body: a JSON value, or text (Vespa's schema). */
  body: unknown;
}

/** One document of a snapshot, decoded. */
export interface ExportDocument {
  id: string;
  metadata?: Metadata;
  text?: string;
  /** `tokens` rows of `dim` float32 values. */
  vectors: Float32Array;
  tokens: number;
  dim: number;
}

/** The snapshot's documents, in order, one decoded matrix at a time. */
export function* exportDocuments(snapshot: IndexSnapshot, omitText = false): Generator<ExportDocument> {
  let d = 0;
  for (const shard of snapshot.shards) {
    for (let slot = 0; slot < shard.docIds.length; slot++, d++) {
      const info = snapshot.documents[d]!;
      const id = shard.docIds[slot]!;
      if (info.id !== id) throw new ColbertError('INTERNAL', `The snapshot's documents and shards disagree at ${d} ("${info.id}" vs "${id}").`);
      const from = shard.offsets[slot]!;
      const tokens = shard.offsets[slot + 1]! - from;
      const doc: ExportDocument = { id, vectors: decodeRows(shard, from, tokens, shard.dim), tokens, dim: shard.dim };
      if (info.metadata !== undefined) doc.metadata = info.metadata;
      if (!omitText && info.text !== undefined) doc.text = info.text;
      yield doc;
    }
  }
}

/** A float32 as the shortest decimal that reads back as the same float32 (9 significant digits at most). */
export function f32(value: number): number {
  for (let p = 6; p < 9; p++) {
    const v = Number(value.toPrecision(p));
    if (Math.fround(v) === value) return v;
  }
  return Number(value.toPrecision(9));
}

/** A matrix as JSON rows. */
export function rows(doc: ExportDocument): number[][] {
  const out: number[][] = [];
  for (let r = 0; r < doc.tokens; r++) {
    const row = new Array<number>(doc.dim);
    for (let k = 0; k < doc.dim; k++) row[k] = f32(doc.vectors[r * doc.dim + k]!);
    out.push(row);
  }
  return out;
}

/** Splits an iterable into arrays of at most `size`. */
export function* batches<T>(items: Iterable<T>, size: number): Generator<T[]> {
  let batch: T[] = [];
  for (const item of items) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

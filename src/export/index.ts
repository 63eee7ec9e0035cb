/**
 * Export to server engines: the index's schema or collection definition, and its documents as the
 * engine's own request bodies, streamed from the store's snapshot one document at a time (the
 * index never exists as one JSON string). One small writer per target beside this file.
 */
import { ColbertError } from '../errors.ts';
import { readPortable } from '../store/portable.ts';
import type { IndexSnapshot } from '../store/types.ts';
import { EXPORT_TARGETS, type ExportOptions, type ExportTarget, type ServerRequest } from './common.ts';
import { elasticDefinition, elasticLines, elasticQuery } from './elasticsearch.ts';
import { nextPlaidBodies, nextPlaidDefinition, nextPlaidQuery } from './next-plaid.ts';
import { qdrantBodies, qdrantDefinition, qdrantQuery } from './qdrant.ts';
import { vespaName, vespaOperations, vespaQuery, vespaSchema } from './vespa.ts';

export { EXPORT_TARGETS, type ExportOptions, type ExportTarget, type ServerRequest } from './common.ts';

/** What `exportFor` returns. */
export interface ServerExport {
  target: ExportTarget;
  /** Create the collection / index first (Vespa: `schemas/<name>.sd` of the application package, as text). */
  definition: ServerRequest;
  /** How to send `documents`: each line is one request body for this method and path (Elasticsearch: the whole stream is one _bulk body). */
  feed: { method: 'PUT' | 'POST'; path: string; format: 'json-lines' | 'ndjson-bulk' | 'vespa-feed-jsonl' };
  /** The documents, UTF-8 JSON lines, one document or one batch per line. */
  documents: ReadableStream<Uint8Array>;
  /** A matching query for this engine (human-readable; the README has the details). */
  query: string;
  documentCount: number;
}

function checkOptions(target: unknown, options: unknown): { target: ExportTarget; name: string; batchSize: number; omitText: boolean } {
  if (!EXPORT_TARGETS.includes(target as ExportTarget)) {
    throw new ColbertError('INVALID_ARGUMENT', `Unknown export target ${JSON.stringify(target)}; use ${EXPORT_TARGETS.map((t) => `'${t}'`).join(', ')}.`, { target });
  }
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) throw new ColbertError('INVALID_ARGUMENT', 'Export options must be an object like { name, batchSize }.');
  const { name = 'colbert', batchSize = 64, omitText = false } = (options ?? {}) as ExportOptions;
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/.test(name)) {
    throw new ColbertError('INVALID_ARGUMENT', `An export name must be 1-100 letters, digits, '_' or '-', starting with a letter or digit; got ${JSON.stringify(name)}.`, { name });
  }
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) throw new ColbertError('INVALID_ARGUMENT', `batchSize must be an integer from 1 to 10000; got ${JSON.stringify(batchSize)}.`, { batchSize });
  if (typeof omitText !== 'boolean') throw new ColbertError('INVALID_ARGUMENT', `omitText must be true or false; got ${JSON.stringify(omitText)}.`, { omitText });
  return { target: target as ExportTarget, name, batchSize, omitText };
}

/** Validates the target and options (before any snapshot is taken). */
export function checkExport(target: unknown, options: unknown): void {
  checkOptions(target, options);
}

/** Lines (JSON values) as a byte stream that encodes one line per pull. */
function lineStream(values: AsyncGenerator<unknown>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await values.next();
      if (done) controller.close();
      else controller.enqueue(encoder.encode(`${JSON.stringify(value)}\n`));
    },
    async cancel() {
      await values.return(undefined);
    },
  });
}

/** The export of a snapshot for one engine. */
export function exportSnapshot(snapshot: IndexSnapshot, target: ExportTarget, options: ExportOptions = {}): ServerExport {
  const o = checkOptions(target, options);
  const documentCount = snapshot.documents.length;
  switch (o.target) {
    case 'qdrant':
      return { target: o.target, definition: qdrantDefinition(snapshot, o.name), feed: { method: 'PUT', path: `/collections/${o.name}/points?wait=true`, format: 'json-lines' }, documents: lineStream(qdrantBodies(snapshot, o)), query: qdrantQuery(o.name), documentCount };
    case 'vespa':
      return { target: o.target, definition: { method: 'PUT', path: `schemas/${vespaName(o.name)}.sd`, body: vespaSchema(snapshot, o.name) }, feed: { method: 'POST', path: `/document/v1/${vespaName(o.name)}/${vespaName(o.name)}/docid/{id}`, format: 'vespa-feed-jsonl' }, documents: lineStream(vespaOperations(snapshot, o.name, o)), query: vespaQuery(o.name), documentCount };
    case 'elasticsearch':
      return { target: o.target, definition: elasticDefinition(snapshot, o.name), feed: { method: 'POST', path: '/_bulk', format: 'ndjson-bulk' }, documents: lineStream(elasticLines(snapshot, o.name, o)), query: elasticQuery(o.name), documentCount };
    case 'next-plaid':
      return { target: o.target, definition: nextPlaidDefinition(o.name), feed: { method: 'POST', path: `/indices/${o.name}/update`, format: 'json-lines' }, documents: lineStream(nextPlaidBodies(snapshot, o)), query: nextPlaidQuery(o.name), documentCount };
  }
}

/**
 * The export of an index file (what `exportIndex()` writes, or `colbert-web index` builds) for
 * one engine, without loading a model. The file is verified first (INDEX_CORRUPT,
 * INDEX_FORMAT_UNSUPPORTED).
 */
export async function exportFileFor(file: Uint8Array | ArrayBuffer | Blob, target: ExportTarget, options: ExportOptions = {}): Promise<ServerExport> {
  checkExport(target, options);
  let bytes: Uint8Array;
  if (file instanceof Uint8Array) bytes = file;
  else if (file instanceof ArrayBuffer) bytes = new Uint8Array(file);
  else if (typeof Blob !== 'undefined' && file instanceof Blob) bytes = new Uint8Array(await file.arrayBuffer());
  else throw new ColbertError('INVALID_ARGUMENT', 'exportFileFor() takes a Uint8Array, an ArrayBuffer or a Blob holding an exported index.');
  return exportSnapshot(readPortable(bytes), target, options);
}

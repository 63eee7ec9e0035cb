/**
 * Qdrant: a collection with one named multivector `colbert` (dot product, MaxSim comparator), and
 * points upserted in batches (`PUT /collections/{name}/points`, one JSON body per line). Qdrant
 * point ids are unsigned integers or UUIDs, so each point's id is the UUID v5 of the document id
 * (stable across exports) and the document id itself is in the payload as `doc_id`.
 */
import { batches, exportDocuments, rows, type ExportOptions, type ServerRequest } from './common.ts';
import type { IndexSnapshot } from '../store/types.ts';

/** The RFC 4122 DNS namespace (any fixed namespace would do), for UUID v5 of document ids. */
const NAMESPACE = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';

/** The RFC 4122 version 5 UUID of `name` in {@link NAMESPACE}. */
export async function uuidV5(name: string): Promise<string> {
  const ns = Uint8Array.from(NAMESPACE.replace(/-/g, '').match(/../g)!, (h) => parseInt(h, 16));
  const bytes = new TextEncoder().encode(name);
  const input = new Uint8Array(ns.length + bytes.length);
  input.set(ns);
  input.set(bytes, ns.length);
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-1', input)).slice(0, 16);
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = Array.from(hash, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function qdrantDefinition(snapshot: IndexSnapshot, name: string): ServerRequest {
  return {
    method: 'PUT',
    path: `/collections/${encodeURIComponent(name)}`,
    body: { vectors: { colbert: { size: snapshot.manifest.dim, distance: 'Dot', multivector_config: { comparator: 'max_sim' } } } },
  };
}

/** One upsert body per batch of points. */
export async function* qdrantBodies(snapshot: IndexSnapshot, options: Required<Pick<ExportOptions, 'batchSize' | 'omitText'>>): AsyncGenerator<unknown> {
  for (const batch of batches(exportDocuments(snapshot, options.omitText), options.batchSize)) {
    const points = [];
    for (const doc of batch) {
      const payload: Record<string, unknown> = { doc_id: doc.id };
      if (doc.metadata !== undefined) payload['metadata'] = doc.metadata;
      if (doc.text !== undefined) payload['text'] = doc.text;
      points.push({ id: await uuidV5(doc.id), vector: { colbert: rows(doc) }, payload });
    }
    yield { points };
  }
}

export function qdrantQuery(name: string): string {
  return `POST /collections/${name}/points/query\n{ "query": [[...], ...query token vectors], "using": "colbert", "limit": 10, "with_payload": true }`;
}

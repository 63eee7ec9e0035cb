/**
 * Elasticsearch: an index whose mapping holds the token vectors in a `rank_vectors` field (float
 * elements, `dims` set), the text for BM25 and the metadata as an object (not indexed), and the
 * documents as one `_bulk` body (NDJSON: an action line, then the document).
 */
import { exportDocuments, rows, type ExportOptions, type ServerRequest } from './common.ts';
import type { IndexSnapshot } from '../store/types.ts';

export function elasticDefinition(snapshot: IndexSnapshot, name: string): ServerRequest {
  return {
    method: 'PUT',
    path: `/${encodeURIComponent(name)}`,
    body: {
      mappings: {
        properties: {
          id: { type: 'keyword' },
          text: { type: 'text' },
          metadata: { type: 'object', enabled: false },
          colbert: { type: 'rank_vectors', element_type: 'float', dims: snapshot.manifest.dim },
        },
      },
    },
  };
}

/** Action and source lines, alternating. */
export async function* elasticLines(snapshot: IndexSnapshot, name: string, options: Required<Pick<ExportOptions, 'omitText'>>): AsyncGenerator<unknown> {
  for (const doc of exportDocuments(snapshot, options.omitText)) {
    yield { index: { _index: name, _id: doc.id } };
    const source: Record<string, unknown> = { id: doc.id, colbert: rows(doc) };
    if (doc.text !== undefined) source['text'] = doc.text;
    if (doc.metadata !== undefined) source['metadata'] = doc.metadata;
    yield source;
  }
}

export function elasticQuery(name: string): string {
  return `POST /${name}/_search\n{ "size": 10, "query": { "script_score": { "query": { "match_all": {} }, "script": { "source": "maxSimDotProduct(params.query_vector, 'colbert')", "params": { "query_vector": [[...], ...query token vectors] } } } } }`;
}

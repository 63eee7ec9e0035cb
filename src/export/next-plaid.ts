/**
 * next-plaid (its REST API): an index created with `POST /indices`, and the documents in batches
 * for `POST /indices/{name}/update`, each `{ documents: [{ embeddings }], metadata: [...] }`.
 * next-plaid numbers documents itself and keeps metadata in SQLite, so every metadata row holds
 * the document id as `doc_id` (and the text, for its FTS5 BM25), beside the document's own fields.
 */
import { batches, exportDocuments, rows, type ExportOptions, type ServerRequest } from './common.ts';
import type { IndexSnapshot } from '../store/types.ts';

export function nextPlaidDefinition(name: string): ServerRequest {
  return { method: 'POST', path: '/indices', body: { name, config: { nbits: 4 } } };
}

export async function* nextPlaidBodies(snapshot: IndexSnapshot, options: Required<Pick<ExportOptions, 'batchSize' | 'omitText'>>): AsyncGenerator<unknown> {
  for (const batch of batches(exportDocuments(snapshot, options.omitText), options.batchSize)) {
    yield {
      documents: batch.map((doc) => ({ embeddings: rows(doc) })),
      metadata: batch.map((doc) => {
        const row: Record<string, unknown> = { ...(doc.metadata ?? {}), doc_id: doc.id };
        if (doc.text !== undefined) row['text'] = doc.text;
        return row;
      }),
    };
  }
}

export function nextPlaidQuery(name: string): string {
  return `POST /indices/${name}/search\n{ "queries": [[[...], ...query token vectors]], "params": { "top_k": 10 } }\n(filtered: POST /indices/${name}/search/filtered with "filter_condition": "doc_id = ?", "filter_parameters": [...])`;
}

/**
 * Vespa: a schema with the token vectors as a mixed tensor `tensor<float>(token{}, v[dim])` and a
 * MaxSim rank profile (a `maxsim` function, so the hybrid profile's global phase can fuse it with
 * BM25 over the text by reciprocal rank), and the documents as a
 * JSON-lines feed of put operations (`vespa feed`), each tensor in the mixed-tensor short form
 * `{ "blocks": { "0": [...], "1": [...] } }` (token label -> dense row). Metadata is fed as a
 * JSON string.
 */
import { exportDocuments, rows, type ExportOptions } from './common.ts';
import type { IndexSnapshot } from '../store/types.ts';

/** A Vespa schema name: letters, digits and underscores, starting with a letter. */
export function vespaName(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[A-Za-z]/.test(clean) ? clean : `d_${clean}`;
}

export function vespaSchema(snapshot: IndexSnapshot, name: string): string {
  const dim = snapshot.manifest.dim;
  const n = vespaName(name);
  return `schema ${n} {
    document ${n} {
        field id type string {
            indexing: summary | attribute
        }
        field text type string {
            indexing: index | summary
            index: enable-bm25
        }
        field metadata type string {
            indexing: summary
        }
        field colbert type tensor<float>(token{}, v[${dim}]) {
            indexing: attribute
        }
    }
    fieldset default {
        fields: text
    }
    rank-profile colbert {
        inputs {
            query(qt) tensor<float>(querytoken{}, v[${dim}])
        }
        function maxsim() {
            expression: sum(reduce(sum(query(qt) * attribute(colbert), v), max, token), querytoken)
        }
        first-phase {
            expression: maxsim
        }
    }
    rank-profile hybrid inherits colbert {
        global-phase {
            expression: reciprocal_rank(maxsim, 60) + reciprocal_rank(bm25(text), 60)
            rerank-count: 1000
        }
        match-features: bm25(text)
    }
}
`;
}

/** One put operation per document. */
export async function* vespaOperations(snapshot: IndexSnapshot, name: string, options: Required<Pick<ExportOptions, 'omitText'>>): AsyncGenerator<unknown> {
  const n = vespaName(name);
  for (const doc of exportDocuments(snapshot, options.omitText)) {
    const colbert: Record<string, number[]> = {};
    rows(doc).forEach((row, i) => (colbert[String(i)] = row));
    const fields: Record<string, unknown> = { id: doc.id, colbert: { blocks: colbert } };
    if (doc.text !== undefined) fields['text'] = doc.text;
    if (doc.metadata !== undefined) fields['metadata'] = JSON.stringify(doc.metadata);
    yield { put: `id:${n}:${n}::${doc.id}`, fields };
  }
}

export function vespaQuery(name: string): string {
  const n = vespaName(name);
  return `POST /search/\n{ "yql": "select * from ${n} where true", "ranking": "colbert", "input.query(qt)": "{0:[...], 1:[...]}", "hits": 10 }\n(hybrid: "yql": "select * from ${n} where userQuery()", "query": "the text", "ranking": "hybrid")`;
}

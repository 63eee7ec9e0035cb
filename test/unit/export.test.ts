/**
 * Export to server engines: for every target, the definition's shape, and the documents stream
 * parsed back: every document, its metadata and text, and every token vector bit-exact (float32)
 * against the stored rows (fp32 and int8 stores); the stream is produced lazily, chunk by chunk.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { createSearch, type ColbertSearch, type ExportTarget, type ServerExport } from '../../src/index.ts';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run as exportMain } from '../../src/cli/export.ts';
import { uuidV5 } from '../../src/export/qdrant.ts';
import { main as cliMain } from '../../src/cli/main.ts';
import { readPortable } from '../../src/store/portable.ts';
import { decodeRows } from '../../src/store/precision.ts';
import type { Metadata } from '../../src/types.ts';
import { makeTestModels } from '../fixtures/make-models.ts';
import { codeOf } from '../support/errors.ts';
import { HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR } from '../support/shared.ts';

interface Expected {
  rows: number[][];
  metadata?: Metadata;
  text?: string;
}

async function readLines(stream: ReadableStream<Uint8Array>): Promise<{ lines: unknown[]; chunks: number; bytes: number }> {
  const decoder = new TextDecoder();
  let text = '';
  let chunks = 0;
  let bytes = 0;
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    chunks++;
    bytes += chunk.byteLength;
    text += decoder.decode(chunk, { stream: true });
  }
  text += decoder.decode();
  expect(text.endsWith('\n')).toBe(true);
  return { lines: text.trimEnd().split('\n').map((l) => JSON.parse(l)), chunks, bytes };
}

/** Every stored document's decoded rows, metadata and text, from the portable export. */
async function expectedDocs(search: ColbertSearch): Promise<Map<string, Expected>> {
  const snapshot = readPortable(await search.exportIndex());
  const out = new Map<string, Expected>();
  let d = 0;
  for (const shard of snapshot.shards) {
    shard.docIds.forEach((id, slot) => {
      const from = shard.offsets[slot]!;
      const n = shard.offsets[slot + 1]! - from;
      const flat = decodeRows(shard, from, n, shard.dim);
      const rows = Array.from({ length: n }, (_, r) => Array.from(flat.subarray(r * shard.dim, (r + 1) * shard.dim)));
      const info = snapshot.documents[d++]!;
      const e: Expected = { rows };
      if (info.metadata !== undefined) e.metadata = info.metadata;
      if (info.text !== undefined) e.text = info.text;
      out.set(id, e);
    });
  }
  return out;
}

/** Parses a target's lines back into documents (id -> rows, metadata, text). */
async function parseBack(target: ExportTarget, lines: unknown[]): Promise<Map<string, Expected>> {
  const out = new Map<string, Expected>();
  const put = (id: string, e: Expected) => {
    expect(out.has(id), `duplicate ${id}`).toBe(false);
    out.set(id, e);
  };
  type Any = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  if (target === 'qdrant') {
    for (const body of lines as Any[]) {
      expect(Object.keys(body)).toEqual(['points']);
      for (const p of body['points']) {
        expect(p.id).toBe(await uuidV5(p.payload.doc_id));
        const e: Expected = { rows: p.vector.colbert };
        if (p.payload.metadata !== undefined) e.metadata = p.payload.metadata;
        if (p.payload.text !== undefined) e.text = p.payload.text;
        put(p.payload.doc_id, e);
      }
    }
  } else if (target === 'vespa') {
    for (const op of lines as Any[]) {
      const id = op.fields.id;
      expect(op.put).toBe(`id:docs:docs::${id}`);
      const blocks = op.fields.colbert.blocks as Record<string, number[]>;
      const labels = Object.keys(blocks);
      expect(labels).toEqual(labels.map((_, i) => String(i)));
      const e: Expected = { rows: labels.map((l) => blocks[l]!) };
      if (op.fields.metadata !== undefined) e.metadata = JSON.parse(op.fields.metadata);
      if (op.fields.text !== undefined) e.text = op.fields.text;
      put(id, e);
    }
  } else if (target === 'elasticsearch') {
    expect(lines.length % 2).toBe(0);
    for (let i = 0; i < lines.length; i += 2) {
      const action = (lines[i] as Any)['index'];
      const source = lines[i + 1] as Any;
      expect(action).toEqual({ _index: 'docs', _id: source['id'] });
      const e: Expected = { rows: source['colbert'] };
      if (source['metadata'] !== undefined) e.metadata = source['metadata'];
      if (source['text'] !== undefined) e.text = source['text'];
      put(source['id'], e);
    }
  } else {
    for (const body of lines as Any[]) {
      expect(body['documents'].length).toBe(body['metadata'].length);
      body['documents'].forEach((doc: Any, i: number) => {
        const { doc_id: id, text, ...metadata } = body['metadata'][i];
        const e: Expected = { rows: doc['embeddings'] };
        if (Object.keys(metadata).length) e.metadata = metadata;
        if (text !== undefined) e.text = text;
        put(id, e);
      });
    }
  }
  return out;
}

function expectSame(got: Map<string, Expected>, want: Map<string, Expected>, what: string): void {
  expect([...got.keys()].sort(), `${what}: ids`).toEqual([...want.keys()].sort());
  let vectors = 0;
  for (const [id, w] of want) {
    const g = got.get(id)!;
    expect(g.metadata, `${what} ${id} metadata`).toEqual(w.metadata);
    expect(g.text, `${what} ${id} text`).toEqual(w.text);
    expect(g.rows.length, `${what} ${id} tokens`).toBe(w.rows.length);
    g.rows.forEach((row, r) => {
      expect(row.length).toBe(w.rows[r]!.length);
      // Bit-exact as float32: the printed decimal reads back as the stored value.
      for (let k = 0; k < row.length; k++) if (Math.fround(row[k]!) !== w.rows[r]![k]) expect.fail(`${what} ${id} row ${r} [${k}]: ${row[k]} vs ${w.rows[r]![k]}`);
      vectors++;
    });
  }
  expect(vectors).toBeGreaterThan(100);
}

describe('uuidV5', () => {
  it('matches the RFC 4122 version 5 UUID of a known name (Python: uuid5(NAMESPACE_DNS, "python.org"))', async () => {
    expect(await uuidV5('python.org')).toBe('886313e1-3b8a-5372-9b90-0c9aee199e5d');
  });
});

describe.skipIf(!HAVE_SHARED)(`exportFor ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  const searches: ColbertSearch[] = [];
  beforeAll(async () => {
    const models = await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
    for (const precision of ['fp32', 'int8'] as const) {
      const search = await createSearch({ model: models.tjs, worker: false, precision });
      await search.add(
        Array.from({ length: 70 }, (_, i) => ({
          id: i === 3 ? 'id with spaces/and:colons' : `doc-${i}`,
          text: `Document ${i}: supersonic flow over a wing, boundary layer ${i % 7}. "Quoted" é ${'x'.repeat(i % 5)}`,
          ...(i % 3 ? { metadata: { tag: i % 2 ? 'odd' : 'even', n: i, nested: { ok: i % 4 === 0 } } } : {}),
        })),
      );
      await search.addEmbeddings([{ id: 'embedding-only', embedding: await search.encodeQuery('a query as a document') }]);
      await search.delete(['doc-10']);
      searches.push(search);
    }
  }, 120_000);
  afterAll(async () => Promise.all(searches.map((s) => s.close())));

  for (const target of ['qdrant', 'vespa', 'elasticsearch', 'next-plaid'] as const) {
    it(`${target}: every document, metadata, text and token vector parses back exactly (fp32 and int8)`, async () => {
      for (const search of searches) {
        const out: ServerExport = await search.exportFor(target, { name: 'docs', batchSize: 16 });
        expect(out.target).toBe(target);
        expect(out.documentCount).toBe(70);
        const { lines, chunks } = await readLines(out.documents);
        expect(chunks).toBe(lines.length);
        if (target === 'qdrant' || target === 'next-plaid') expect(lines.length).toBe(Math.ceil(70 / 16));
        expectSame(await parseBack(target, lines), await expectedDocs(search), `${target} ${search.info.model}`);
        expect(out.query.length).toBeGreaterThan(20);
      }
    });
  }

  it('definitions name the dimension and the MaxSim/late-interaction type of each engine', async () => {
    const search = searches[0]!;
    const dim = search.info.dim;
    const qdrant = await search.exportFor('qdrant', { name: 'docs' });
    expect(qdrant.definition).toEqual({ method: 'PUT', path: '/collections/docs', body: { vectors: { colbert: { size: dim, distance: 'Dot', multivector_config: { comparator: 'max_sim' } } } } });
    const vespa = await search.exportFor('vespa', { name: 'docs' });
    expect(vespa.definition.path).toBe('schemas/docs.sd');
    expect(vespa.definition.body).toContain(`field colbert type tensor<float>(token{}, v[${dim}])`);
    expect(vespa.definition.body).toContain('sum(reduce(sum(query(qt) * attribute(colbert), v), max, token), querytoken)');
    // The hybrid global phase fuses a function the colbert profile defines (a rank feature name
    // such as first_phase does not exist in Vespa).
    expect(vespa.definition.body).toMatch(/function maxsim\(\) \{\s+expression: sum\(reduce/);
    expect(vespa.definition.body).toContain('reciprocal_rank(maxsim, 60) + reciprocal_rank(bm25(text), 60)');
    const es = await search.exportFor('elasticsearch', { name: 'docs' });
    expect((es.definition.body as { mappings: { properties: Record<string, unknown> } }).mappings.properties['colbert']).toEqual({ type: 'rank_vectors', element_type: 'float', dims: dim });
    const plaid = await search.exportFor('next-plaid', { name: 'docs' });
    expect(plaid.definition).toEqual({ method: 'POST', path: '/indices', body: { name: 'docs', config: { nbits: 4 } } });
    for (const o of [qdrant, vespa, es, plaid]) await o.documents.cancel();
  });

  it('streams lazily: the first line is ready before the rest is built, and cancel stops it', async () => {
    const out = await searches[0]!.exportFor('vespa', { name: 'docs' });
    const reader = out.documents.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    const line = new TextDecoder().decode(first.value);
    expect(line.split('\n').filter(Boolean).length).toBe(1);
    await reader.cancel();
    const omit = await searches[0]!.exportFor('elasticsearch', { name: 'docs', omitText: true });
    const { lines } = await readLines(omit.documents);
    expect(lines.some((l) => (l as { text?: string }).text !== undefined)).toBe(false);
  });

  it('colbert-web export writes the definition, the documents (parsed back exactly) and the query from an index file', async () => {
    const search = searches[1]!;
    const dir = await mkdtemp(join(tmpdir(), 'colbert-export-'));
    const file = join(dir, 'index.colbert');
    await writeFile(file, await search.exportIndex());
    for (const target of ['next-plaid', 'vespa'] as const) {
      const out = join(dir, target);
      expect(await cliMain(['export', '--to', target, '--index', file, '--out', out, '--name', 'docs', '--batch-size', '16'])).toBe(0);
      const text = await readFile(join(out, 'documents.jsonl'), 'utf8');
      const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
      expectSame(await parseBack(target, lines), await expectedDocs(search), `cli ${target}`);
      if (target === 'vespa') expect(await readFile(join(out, 'schemas', 'docs.sd'), 'utf8')).toContain('rank-profile colbert');
      else expect(JSON.parse(await readFile(join(out, 'definition.json'), 'utf8'))).toEqual({ method: 'POST', path: '/indices', body: { name: 'docs', config: { nbits: 4 } } });
      expect(await readFile(join(out, 'query.txt'), 'utf8')).toContain('Query:');
    }
    expect(await exportMain(['--to', 'milvus', '--index', file, '--out', dir])).toBe(2);
    expect(await exportMain(['--to', 'qdrant', '--out', dir])).toBe(2);
    await writeFile(join(dir, 'bad.colbert'), new Uint8Array(100));
    expect(await exportMain(['--to', 'qdrant', '--index', join(dir, 'bad.colbert'), '--out', join(dir, 'bad')])).toBe(1);
  });

  it('rejects unknown targets and bad options with INVALID_ARGUMENT', async () => {
    const search = searches[0]!;
    expect(await codeOf(search.exportFor('milvus' as never))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(search.exportFor('qdrant', { name: 'bad name!' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(search.exportFor('qdrant', { batchSize: 0 }))).toBe('INVALID_ARGUMENT');
  });
});

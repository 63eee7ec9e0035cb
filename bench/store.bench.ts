/**
 * The persistent index: bytes per token at each storage precision, the time to open an index of
 * 100k tokens beside a baseline that keeps one record per document, and how far fp16 and int8
 * move the ranking from fp32 (top-10 overlap, largest score difference) on random vectors and
 * on Cranfield with the generated test model.
 *
 *   npx tsx bench/store.bench.ts [--no-cranfield]     (or: npm run bench -- store)
 *
 * Runs in Node on fake-indexeddb (an in-memory IndexedDB written in JavaScript): open times are
 * only meaningful as a ratio against the baseline measured in the same run, not as browser times.
 */
import 'fake-indexeddb/auto';
import { deleteDB, openDB } from 'idb';
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createSearch } from '../src/index.ts';
import { maxSimShard } from '../src/score/cpu.ts';
import { deleteIndex, IdbStore } from '../src/store/idb.ts';
import { MemoryStore } from '../src/store/memory.ts';
import { decodeRows, VECTOR_PRECISIONS, type VectorPrecision } from '../src/store/precision.ts';
import { packMatrix } from '../src/store/shards.ts';
import type { ShardView, StoredDocument, VectorStore } from '../src/store/types.ts';
import type { TokenMatrix } from '../src/types.ts';
import { loadCranfield } from '../test/fixtures/cranfield.ts';
import { makeTestModels, mulberry32 } from '../test/fixtures/make-models.ts';
import { CRANFIELD_DIR, HAVE_SHARED, REPO_ROOT, TOKENIZER_DIR } from '../test/support/shared.ts';
import { FINGERPRINT } from '../test/support/store.ts';

const DIM = 128;
const fingerprint = { ...FINGERPRINT, dim: DIM };

/** A random matrix of unit rows (like a model's normalised token vectors). */
function randomMatrix(rand: () => number, tokens: number): TokenMatrix {
  const data = new Float32Array(tokens * DIM);
  for (let r = 0; r < tokens; r++) {
    let norm = 0;
    for (let k = 0; k < DIM; k++) {
      // Sum of uniforms: roughly Gaussian, so directions are roughly uniform on the sphere.
      const v = rand() + rand() + rand() - 1.5;
      data[r * DIM + k] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    for (let k = 0; k < DIM; k++) data[r * DIM + k]! /= norm;
  }
  return { data, tokens, dim: DIM, ids: new Int32Array(tokens).fill(-1) };
}

const ms = (t0: number) => performance.now() - t0;
// Collect garbage before each timed open, so one run's garbage does not bill the next one.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) => `${median(xs).toFixed(1)} (min ${Math.min(...xs).toFixed(1)})`;

/**
 * A store's shards with their rows decoded to float32 once, exactly as decodeRow gives them to the
 * CPU scorer: the same scores as scoring the stored rows, without decoding them for every query.
 */
async function decodedShards(store: VectorStore): Promise<ShardView[]> {
  const out: ShardView[] = [];
  for await (const shard of store.shards()) {
    const rows = shard.offsets[shard.docIds.length]!;
    out.push({ ...shard, precision: 'fp32', vectors: decodeRows(shard, 0, rows, shard.dim), key: `${shard.key}-decoded` });
  }
  return out;
}

/** Every document's score for a query, by id. */
function allScores(shards: readonly ShardView[], query: TokenMatrix): Map<string, number> {
  const out = new Map<string, number>();
  for (const shard of shards) {
    const scores = maxSimShard(query, shard);
    shard.docIds.forEach((id, slot) => {
      if (id !== null) out.set(id, scores[slot]!);
    });
  }
  return out;
}

function topK(scores: Map<string, number>, k: number): string[] {
  return [...scores].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, k).map(([id]) => id);
}

/** Mean top-10 overlap with fp32 and the largest |score - fp32 score| over all documents and queries. */
async function drift(docs: StoredDocument[], queries: TokenMatrix[]): Promise<Map<VectorPrecision, { overlap: number; maxDiff: number; maxRel: number }>> {
  const stores = new Map<VectorPrecision, ShardView[]>();
  for (const precision of VECTOR_PRECISIONS) {
    const store = new MemoryStore({ precision });
    await store.put(docs);
    stores.set(precision, await decodedShards(store));
  }
  const out = new Map<VectorPrecision, { overlap: number; maxDiff: number; maxRel: number }>();
  const reference = queries.map((q) => allScores(stores.get('fp32')!, q));
  out.set('fp32', { overlap: 1, maxDiff: 0, maxRel: 0 }); // the reference itself
  for (const precision of VECTOR_PRECISIONS.filter((p) => p !== 'fp32')) {
    let overlap = 0;
    let maxDiff = 0;
    let maxRel = 0;
    for (let i = 0; i < queries.length; i++) {
      const ref = reference[i]!;
      const got = allScores(stores.get(precision)!, queries[i]!);
      const top = new Set(topK(ref, 10));
      overlap += topK(got, 10).filter((id) => top.has(id)).length / 10;
      for (const [id, s] of got) {
        const d = Math.abs(s - ref.get(id)!);
        maxDiff = Math.max(maxDiff, d);
        maxRel = Math.max(maxRel, d / Math.max(1e-9, Math.abs(ref.get(id)!)));
      }
    }
    out.set(precision, { overlap: overlap / queries.length, maxDiff, maxRel });
  }
  return out;
}

function printDrift(title: string, rows: Map<VectorPrecision, { overlap: number; maxDiff: number; maxRel: number }>): void {
  console.log(`\n${title}`);
  console.log('precision  top-10 overlap vs fp32  max |score diff|  max relative diff');
  for (const [p, r] of rows) console.log(`${p.padEnd(9)}  ${r.overlap.toFixed(4).padStart(22)}  ${r.maxDiff.toExponential(2).padStart(16)}  ${r.maxRel.toExponential(2).padStart(17)}`);
}

// 1. Bytes per token, and the time to open a 100k-token index vs one record per document.
const DOCS = 1000;
const TOKENS_PER_DOC = 100;
const rand = mulberry32(42);
const corpus: StoredDocument[] = Array.from({ length: DOCS }, (_, i) => ({ id: `doc-${i}`, matrix: randomMatrix(rand, TOKENS_PER_DOC), metadata: { i } }));
const totalTokens = DOCS * TOKENS_PER_DOC;

/**
 * Baseline: one IndexedDB record per document holding its packed vectors at the same precision;
 * opening reads every record back.
 */
async function writeBaseline(precision: VectorPrecision): Promise<string> {
  const name = `baseline-${precision}`;
  const db = await openDB(name, 1, { upgrade: (d) => void d.createObjectStore('docs') });
  const tx = db.transaction('docs', 'readwrite');
  await Promise.all([
    ...corpus.map((d) => {
      const packed = packMatrix(d.matrix.data, d.matrix.tokens, DIM, precision);
      return tx.store.put({ id: d.id, vectors: packed.vectors.buffer, scales: packed.scales?.buffer, ids: d.matrix.ids.slice().buffer, metadata: d.metadata }, d.id);
    }),
    tx.done,
  ]);
  db.close();
  return name;
}

async function openBaseline(name: string): Promise<number> {
  gc();
  const t0 = performance.now();
  const db = await openDB(name, 1);
  const rows = await db.getAll('docs');
  const loaded = rows.map((r: { id: string; vectors: ArrayBuffer }) => ({ id: r.id, bytes: new Uint8Array(r.vectors) }));
  if (loaded.length !== DOCS) throw new Error('baseline lost documents');
  db.close();
  return ms(t0);
}

async function openOurs(name: string): Promise<number> {
  gc();
  const t0 = performance.now();
  const store = await IdbStore.open({ name, fingerprint });
  if ((await store.stats()).tokens !== totalTokens) throw new Error('index lost tokens');
  const t = ms(t0);
  await store.close();
  return t;
}

console.log(`Persistent index: ${DOCS} documents x ${TOKENS_PER_DOC} tokens = ${totalTokens} tokens, dim ${DIM}. Node + fake-indexeddb (an IndexedDB in JavaScript): read open times as ratios within this run, not as browser times.`);
console.log('\nopen ms: median of 9 interleaved runs (min); ratio of medians and of minima');
console.log('precision  bytes/token (vectors)  bytes/token (on disk)  open ms: sharded  open ms: one record per doc (baseline)  ratio (median, min)');
for (const precision of VECTOR_PRECISIONS) {
  const name = `bench-${precision}`;
  await deleteIndex(name);
  const store = await IdbStore.open({ name, fingerprint, precision });
  for (let i = 0; i < DOCS; i += 250) await store.put(corpus.slice(i, i + 250));
  const stats = await store.stats();
  await store.close();
  const baseName = await writeBaseline(precision);
  const ours: number[] = [];
  const base: number[] = [];
  // Interleaved, median of 9: the machine is shared.
  for (let run = 0; run < 9; run++) {
    ours.push(await openOurs(name));
    base.push(await openBaseline(baseName));
  }
  const ratios = `${(median(ours) / median(base)).toFixed(2)}x, ${(Math.min(...ours) / Math.min(...base)).toFixed(2)}x`;
  console.log(
    `${precision.padEnd(9)}  ${(stats.vectorBytes / stats.tokens).toFixed(1).padStart(21)}  ${(stats.bytesOnDisk! / stats.tokens).toFixed(1).padStart(21)}  ${fmt(ours).padStart(16)}  ${fmt(base).padStart(38)}  ${ratios.padStart(19)}`,
  );
  await deleteIndex(name);
  await deleteDB(baseName);
}

// 2. Ranking drift on random data.
{
  const r = mulberry32(7);
  const docs: StoredDocument[] = Array.from({ length: 1000 }, (_, i) => ({ id: `r${i}`, matrix: randomMatrix(r, 20 + Math.floor(r() * 80)) }));
  const queries = Array.from({ length: 50 }, () => randomMatrix(r, 16));
  printDrift('Ranking drift vs fp32, random unit vectors (1000 documents of 20-100 tokens, 50 queries of 16 tokens):', await drift(docs, queries));
}

// 3. Ranking drift on Cranfield with the generated test model.
if (process.argv.includes('--no-cranfield')) {
  console.log('\nCranfield drift skipped (--no-cranfield).');
} else if (!HAVE_SHARED) {
  console.log('\nCranfield drift skipped: ../shared/fixtures not found.');
} else {
  const models = resolve(REPO_ROOT, '.cache/test-models');
  if (!existsSync(resolve(models, 'tjs'))) await makeTestModels(models, TOKENIZER_DIR);
  const search = await createSearch({ model: resolve(models, 'tjs'), worker: false, device: 'wasm', dtype: 'fp32' });
  const { docs, queries } = await loadCranfield(CRANFIELD_DIR);
  const indexable = docs.filter((d) => d.text.trim() !== '');
  const matrices: TokenMatrix[] = [];
  for (let i = 0; i < indexable.length; i += 200) {
    matrices.push(...(await search.encodeDocuments(indexable.slice(i, i + 200).map((d) => d.text))));
    process.stderr.write(`\rencoding Cranfield: ${matrices.length}/${indexable.length}`);
  }
  process.stderr.write('\n');
  // The first 60 queries (as test/unit/cranfield-eval.test.ts): every query scores all 1398
  // abstracts at each precision, which is minutes of plain JavaScript for all 225.
  const QUERIES = 60;
  const queryMatrices: TokenMatrix[] = [];
  for (const q of queries.slice(0, QUERIES)) queryMatrices.push(await search.encodeQuery(q.text));
  await search.close();
  printDrift(
    `Ranking drift vs fp32, Cranfield (${indexable.length} abstracts, first ${QUERIES} of ${queries.length} queries, generated test model, fp32 weights):`,
    await drift(indexable.map((d, i) => ({ id: d.id, matrix: matrices[i]! })), queryMatrices),
  );
}

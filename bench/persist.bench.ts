/**
 * `npm run bench -- persist [--tokens=200000]`: what persisting the compressed index saves on
 * open. Node, fake-indexeddb, one thread, the synthetic clustered collection (nbits 2):
 * - train on open: what every open cost before the codes were stored (a CompressedIndex trains
 *   from the store's vectors), measured on a memory store holding the same documents;
 * - read on open: opening the persisted index again (IdbStore.open + CompressedIndex.open, which
 *   reads the codec and the codes; `trainings` must stay 0);
 * - a write of 64 documents with and without encoding their codes in the same transaction.
 * Every figure beside its baseline from the same run: read them as ratios.
 */
import 'fake-indexeddb/auto';
import { CompressedIndex } from '../src/compression.ts';
import { deleteIndex, IdbStore } from '../src/store/idb.ts';
import type { ModelFingerprint } from '../src/store/manifest.ts';
import { MemoryStore } from '../src/store/memory.ts';
import { clusteredCollection } from '../test/fixtures/clustered.ts';
import { FINGERPRINT } from '../test/support/store.ts';

const arg = (name: string, fallback: number): number => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.split('=')[1]) : fallback;
};
const TOKENS = arg('tokens', 200_000);
const OPTIONS = { nbits: 2, poolFactor: 1, rerank: true } as const;
const FP: ModelFingerprint = { ...FINGERPRINT, dim: 128 };
const seconds = (t0: number) => (performance.now() - t0) / 1000;

const collection = clusteredCollection(TOKENS);
const docs = Array.from({ length: collection.documents }, (_, i) => collection.document(i));
const batches: (typeof docs)[] = [];
for (let i = 0; i < docs.length; i += 512) batches.push(docs.slice(i, i + 512));
const stored = (b: typeof docs) => b.map((d) => ({ id: d.id, matrix: d.embedding }));

// Baseline: training on open, as every open did before (memory store, same documents).
const memory = new MemoryStore({ precision: 'fp16' });
for (const b of batches) await memory.put(stored(b));
let t0 = performance.now();
const trainedHere = new CompressedIndex(OPTIONS);
await trainedHere.open(memory);
const trainSeconds = seconds(t0);

// The persisted index: written, trained once, closed, then opened again.
await deleteIndex('bench-persist');
let store = await IdbStore.open({ name: 'bench-persist', fingerprint: FP, precision: 'fp16' });
for (const b of batches) await store.put(stored(b));
const first = new CompressedIndex(OPTIONS);
t0 = performance.now();
await first.open(store);
const firstSeconds = seconds(t0);
const extra = clusteredCollection(64 * 600, { seed: 77 });
const extraDocs = Array.from({ length: 64 }, (_, i) => ({ ...extra.document(i), id: `x${i}` }));
t0 = performance.now();
await store.put(stored(extraDocs));
const encodedWrite = seconds(t0);
await first.update(store, extraDocs.map((d) => d.id));
await store.close();

t0 = performance.now();
store = await IdbStore.open({ name: 'bench-persist', fingerprint: FP, precision: 'fp16' });
const storeOpen = seconds(t0);
const reopened = new CompressedIndex(OPTIONS);
await reopened.open(store);
const readSeconds = seconds(t0);
const stats = reopened.stats();
if (stats.trainings !== 0 || stats.state !== 'ready') throw new Error(`the reopened index trained (${JSON.stringify(stats)})`);
await store.close();

// The same write into an index without a codec (no codes encoded).
await deleteIndex('bench-plain');
const plain = await IdbStore.open({ name: 'bench-plain', fingerprint: FP, precision: 'fp16' });
for (const b of batches) await plain.put(stored(b));
t0 = performance.now();
await plain.put(stored(extraDocs.map((d) => ({ ...d, id: `y${d.id}` }))));
const plainWrite = seconds(t0);
await plain.close();
await deleteIndex('bench-plain');
await deleteIndex('bench-persist');

const tokens = collection.tokens;
console.log(`${collection.documents} documents, ${tokens} tokens, ${stats.centroids} centroids, nbits 2`);
console.log('| step | seconds | per million tokens |');
console.log('| --- | ---: | ---: |');
console.log(`| train on open (before: every open; memory store) | ${trainSeconds.toFixed(2)} | ${((trainSeconds * 1e6) / tokens).toFixed(1)} |`);
console.log(`| first open with compression: train + store the codes (IndexedDB) | ${firstSeconds.toFixed(2)} | ${((firstSeconds * 1e6) / tokens).toFixed(1)} |`);
console.log(`| reopen: IdbStore.open (vectors) | ${storeOpen.toFixed(2)} | ${((storeOpen * 1e6) / tokens).toFixed(1)} |`);
console.log(`| reopen: IdbStore.open + read the codes (trainings 0) | ${readSeconds.toFixed(2)} | ${((readSeconds * 1e6) / tokens).toFixed(1)} |`);
console.log(`| write 64 documents (${extraDocs.reduce((n, d) => n + d.embedding.tokens, 0)} tokens), codes encoded in the transaction | ${encodedWrite.toFixed(3)} | |`);
console.log(`| the same write without a codec | ${plainWrite.toFixed(3)} | |`);
console.log(`reading the codes on open: ${(trainSeconds / Math.max(1e-6, readSeconds - storeOpen)).toFixed(1)}x faster than training them`);

/**
 * What bench/memory-browser.ts drives in the page, as one ES bundle: the IndexedDB store, the
 * compressed index, the CPU scorer, the rerank shard and the synthetic clustered collection.
 */
export { CompressedIndex } from '../src/compression.ts';
export { createScorer } from '../src/score/scorer.ts';
export { IdbStore, deleteIndex } from '../src/store/idb.ts';
export { matricesShard } from '../src/store/shards.ts';
export { clusteredCollection } from '../test/fixtures/clustered.ts';

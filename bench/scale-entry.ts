/**
 * What bench/scale-browser.ts drives in the page, as one ES bundle: the compressed index, the
 * memory store, the CPU scorer and the synthetic clustered collection (no test imports in the page).
 */
export { CompressedIndex } from '../src/compression.ts';
export { createScorer } from '../src/score/scorer.ts';
export { MemoryStore } from '../src/store/memory.ts';
export { clusteredCollection } from '../test/fixtures/clustered.ts';

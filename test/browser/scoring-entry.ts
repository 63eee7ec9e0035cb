/**
 * The scoring modules as one ES bundle for test/browser/scoring.spec.ts, which builds it with vite
 * into .cache/scoring-test/ so the page can drive the GPU and CPU scorers directly (tiny buffer
 * segments, a shared device under an error scope, device loss) against a real store.
 */
export { createScorer, CpuScorer } from '../../src/score/scorer.ts';
import type { requestScoringDevice as RequestScoringDevice } from '../../src/score/gpu.ts';

/** The scorer's device request, loaded the way the library loads gpu.ts (on demand). */
export const requestScoringDevice: typeof RequestScoringDevice = async (adapter) => (await import('../../src/score/gpu.ts')).requestScoringDevice(adapter);
export { maxSimShard } from '../../src/score/cpu.ts';
export { MemoryStore } from '../../src/store/memory.ts';
export { benchCorpus, randomMatrix, shardOf } from '../support/shards.ts';
export { mulberry32 } from '../support/rng.ts';
export { spawnMaxSimWorker } from '../../src/score/pool.ts';
export { IdbStore } from '../../src/store/idb.ts';
export { FINGERPRINT } from '../support/store.ts';
export { allowedIds, compileFilter } from '../../src/filter/index.ts';
export { randomFilter, randomMetadata } from '../support/filters.ts';

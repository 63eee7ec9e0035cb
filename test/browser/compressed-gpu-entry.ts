/**
 * The compressed index's GPU stages and their plain-JS references as one ES bundle for
 * test/browser/compressed-gpu.spec.ts, which builds it with vite into .cache/compressed-gpu-test/
 * so the page can drive them directly on SwiftShader.
 */
export { CompressedGpuIndex, GpuScoringError, MAX_GPU_PROBE } from '../../src/score/compressed-gpu.ts';
export { centroidScoresRef, centroidInteractionRef, residualMaxSimRef } from '../../src/score/compressed-ref.ts';
export { centroidFloats, halfCentroids, residualBytes } from '../../src/store/residual.ts';
export { requestScoringDevice } from '../../src/score/gpu.ts';
export { randomMatrix } from '../support/shards.ts';
export { mulberry32 } from '../support/rng.ts';

/**
 * What bench/assign-browser.ts drives in the page: the CPU code assignment (WASM SIMD, two-level
 * tree or flat) and the compressed index's WGSL stages that can assign codes (query x centroids,
 * then the best centroid of every row).
 */
export { CompressedGpuIndex } from '../src/score/compressed-gpu.ts';
export { requestScoringDevice } from '../src/score/gpu.ts';
export { assignCodes, trainCodec } from '../src/score/train.ts';
export { randomMatrix } from '../test/support/shards.ts';
export { mulberry32 } from '../test/support/rng.ts';

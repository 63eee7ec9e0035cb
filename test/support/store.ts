/** Shared fixtures of the store tests. */
import type { ModelFingerprint } from '../../src/store/manifest.ts';

/** A made-up model fingerprint (dim 8) for store tests that need no model. */
export const FINGERPRINT: ModelFingerprint = {
  model: 'test/model',
  revision: 'main',
  content: '0123456789abcdef',
  layout: 'transformers.js',
  dim: 8,
  pooling: 'none',
  encoding: { queryPrompt: 'q: ', documentPrompt: 'd: ', queryLength: 32, documentLength: 180, queryMarkerId: 1, documentMarkerId: 2, maskId: 3, doQueryExpansion: true, attendToExpansionTokens: false, expansion: 'zero', skiplist: ['.'] },
};

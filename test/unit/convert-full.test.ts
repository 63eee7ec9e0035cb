/**
 * The slow check (opt-in: COLBERT_SLOW=1): a random checkpoint with the full ColBERT-Zero shape
 * (22 layers, hidden 768, 12 heads, window 128, 50,370 x 768 embedding; about 600 MB of fp32
 * weights, generated deterministically in memory) converted to fp32 ONNX and run by onnxruntime
 * (WASM) agrees with the float64 reference to 1e-4 on a 160-token input, longer than the sliding
 * window so that local and global layers differ, with padding in the batch. The float64
 * reference dominates: about 12 minutes on a busy two-core machine (measured max difference
 * 2.1e-6), so CI runs the tiny checkpoint in convert.test.ts instead.
 */
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { convertCheckpoint } from '../../src/model/convert/convert.ts';
import { writeSafetensors } from '../../src/model/safetensors.ts';
import { checkpointConfig, checkpointTensors, FULL } from '../fixtures/make-checkpoint.ts';
import { ReferenceModernBert } from '../fixtures/reference-modernbert.ts';

const SLOW = process.env['COLBERT_SLOW'] === '1';

describe.skipIf(!SLOW)(`full ColBERT-Zero shape ${SLOW ? '' : '(skipped: set COLBERT_SLOW=1)'}`, () => {
  it('converted fp32 graph matches the float64 reference to 1e-4 across the sliding window', { timeout: 1_800_000 }, async () => {
    const { backbone, dense } = checkpointTensors(FULL);
    const weights = writeSafetensors(backbone);
    const config = checkpointConfig(FULL);
    const head = [{ weight: dense, inFeatures: FULL.hidden_size, outFeatures: FULL.dim, bias: null, activation: 'identity' as const }];
    const bytes = convertCheckpoint({ config, weights, head }, 'fp32');
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    // Two rows: 160 real tokens, and 100 real tokens padded to 160 (its pad rows are not compared).
    const S = 160;
    const lengths = [160, 100];
    const ids = lengths.map((_, b) => Array.from({ length: S }, (_, i) => (i === 0 ? 50281 : ((i * 7919 + b * 104729) % 50000) + 100)));
    const masks = lengths.map((len) => Array.from({ length: S }, (_, i) => (i < len ? 1 : 0)));
    const out = await session.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.flat(), (v) => BigInt(v)), [2, S]),
      attention_mask: new ort.Tensor('int64', BigInt64Array.from(masks.flat(), (v) => BigInt(v)), [2, S]),
    });
    await session.release();
    const data = out['output']!.data as Float32Array;
    const reference = new ReferenceModernBert(config, weights, head);
    let worst = 0;
    lengths.forEach((len, b) => {
      const ref = reference.forward(ids[b]!, masks[b]!);
      for (let i = 0; i < len; i++) for (let k = 0; k < FULL.dim; k++) worst = Math.max(worst, Math.abs(data[(b * S + i) * FULL.dim + k]! - ref[i]![k]!));
    });
    console.log(`full shape: max |onnx - reference| = ${worst.toExponential(2)} over ${lengths.join(' + ')} tokens`);
    expect(worst).toBeLessThan(1e-4);
  });
});

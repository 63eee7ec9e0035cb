/**
 * The contextual test model (test/fixtures/contextual-model.ts): its ONNX graphs, run through the
 * library in both layouts, equal the plain-TS reference forward pass; and its vectors have the
 * properties a trained encoder's have and the tiny random model's lack: related words lie near
 * each other, one token's vector changes with its context, and token vectors cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSearch, type ColbertSearch, type TokenMatrix } from '../../src/index.ts';
import { loadCranfield } from '../fixtures/cranfield.ts';
import { CONTEXTUAL_HIDDEN, contextualReference, contextualWeights, type ContextualWeights } from '../fixtures/contextual-model.ts';
import { PUNCTUATION, makeTestModels, type TestModels } from '../fixtures/make-models.ts';
import { kmeans } from '../support/linalg.ts';
import { CRANFIELD_DIR, HAVE_SHARED, REPO_ROOT, SHARED_MISSING, TOKENIZER_DIR, loadPylateTokenizerFiles } from '../support/shared.ts';
import { Tokenizer } from '@huggingface/tokenizers';
import { resolve } from 'node:path';

const [CLS_ID, SEP_ID, MASK_ID, D_ID] = [50281, 50282, 50284, 50369];
const files = HAVE_SHARED ? loadPylateTokenizerFiles(TOKENIZER_DIR) : undefined;
const hf = files ? new Tokenizer(files.tokenizerJson, files.tokenizerConfig) : (undefined as unknown as Tokenizer);
/** PyLate's skiplist (punctuation) ids, from the tokenizer. */
const skip = new Set(files ? PUNCTUATION.map((p) => hf.token_to_id(p)).filter((id): id is number => id !== undefined) : []);

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
};

const row = (m: TokenMatrix, i: number): Float32Array => m.data.subarray(i * m.dim, (i + 1) * m.dim);

const cosine = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    s += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return s / Math.sqrt(na * nb);
};

describe.skipIf(!HAVE_SHARED)(`contextual test model ${HAVE_SHARED ? '' : SHARED_MISSING}`, () => {
  let models: TestModels;
  let weights: ContextualWeights;
  let tjs: ColbertSearch;
  let exported: ColbertSearch;
  let tiny: ColbertSearch;

  beforeAll(async () => {
    models = await makeTestModels(resolve(REPO_ROOT, '.cache/test-models'), TOKENIZER_DIR);
    weights = await contextualWeights(TOKENIZER_DIR, CRANFIELD_DIR);
    tjs = await createSearch({ model: models.contextualTjs, worker: false, storage: 'memory', dtype: 'fp32' });
    exported = await createSearch({ model: models.contextualColbertExport, worker: false, storage: 'memory', dtype: 'fp32', prompts: { query: 'search_query: ', document: 'search_document: ' } });
    tiny = await createSearch({ model: models.tjs, worker: false, storage: 'memory', dtype: 'fp32' });
  }, 300_000);
  afterAll(async () => {
    await Promise.all([tjs?.close(), exported?.close(), tiny?.close()]);
  });

  describe('the ONNX graphs compute the reference forward pass', () => {
    // No punctuation in these texts: every input position is kept, so the output rows are the whole sequence.
    const texts = ['Boundary layer transition on a flat plate at supersonic speed', 'heat transfer', 'the pressure distribution over a swept wing in transonic flow and its effect on buckling of thin cylindrical shells'];

    it('declares the hidden size it was built with', () => {
      expect(weights.hidden).toBe(CONTEXTUAL_HIDDEN);
      expect(tjs.dim).toBe(128);
      expect(tjs.info).toMatchObject({ layout: 'transformers.js', file: 'onnx/model.onnx' });
      expect(exported.info).toMatchObject({ layout: 'colbert-export', file: 'model.onnx' });
    });

    it('documents of different lengths, padded together in one batch, in both layouts', async () => {
      for (const search of [tjs, exported]) {
        const encoded = await search.encodeDocuments(texts);
        encoded.forEach((m, d) => {
          // The whole input sequence ([CLS] [D] prompt text [SEP]); the skiplist ":" of the prompt is dropped only after the forward pass.
          const input = [CLS_ID, D_ID, ...hf.encode(`search_document: ${texts[d]!}`, { add_special_tokens: false }).ids, SEP_ID];
          const ref = contextualReference(weights, input, new Array<number>(input.length).fill(1));
          const kept = input.flatMap((id, i) => (skip.has(id) ? [] : [i]));
          expect([...m.ids]).toEqual(kept.map((i) => input[i]));
          expect(kept.length).toBeLessThan(input.length);
          expect(maxAbsDiff(m.data, kept.flatMap((i) => [...ref.subarray(i * 128, (i + 1) * 128)]))).toBeLessThan(1e-5);
        });
      }
    });

    it("queries with masked [MASK] expansion ('eager': the masked rows take context from real tokens only)", async () => {
      const eager = await createSearch({ model: models.contextualTjs, worker: false, storage: 'memory', dtype: 'fp32', expansion: 'eager' });
      try {
        const q = await eager.encodeQuery('What is the lift of a delta wing?');
        expect(q.tokens).toBe(39);
        const mask = Array.from(q.ids, (id) => (id === MASK_ID ? 0 : 1));
        expect(mask.filter((m) => m === 0).length).toBeGreaterThan(20);
        expect(maxAbsDiff(q.data, contextualReference(weights, q.ids, mask))).toBeLessThan(1e-5);
      } finally {
        await eager.close();
      }
    });

    it('the int8 files stay close to the fp32 ones', async () => {
      const q8 = await createSearch({ model: models.contextualTjs, worker: false, storage: 'memory', dtype: 'q8' });
      try {
        const [a] = await q8.encodeDocuments([texts[2]!]);
        const [b] = await tjs.encodeDocuments([texts[2]!]);
        for (let i = 0; i < a!.tokens; i++) expect(cosine(row(a!, i), row(b!, i))).toBeGreaterThan(0.995);
      } finally {
        await q8.close();
      }
    });
  });
});

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

  describe('its vectors behave like a trained encoder\'s (and the tiny model\'s do not)', () => {
    /** Pairs the Cranfield abstracts support: the second word is among the first's nearest tokens. */
    const RELATED: [string, string][] = [
      [' wing', ' wings'],
      [' shock', ' wave'],
      [' heat', ' transfer'],
      [' boundary', ' layer'],
      [' plate', ' flat'],
      [' cylinder', ' cylindrical'],
      [' mach', ' number'],
      [' flow', ' flows'],
    ];
    const single = (word: string): number => {
      const ids = hf.encode(word, { add_special_tokens: false }).ids;
      expect(ids, word).toHaveLength(1);
      return ids[0]!;
    };
    /** Rank of `b` among the tokens seen at least 5 times in the abstracts, by cosine of embedding rows to `a` (0 = nearest). */
    const rank = (embedding: Float32Array, hidden: number, a: number, b: number): number => {
      const rowA = embedding.subarray(a * hidden, (a + 1) * hidden);
      const target = cosine(rowA, embedding.subarray(b * hidden, (b + 1) * hidden));
      let closer = 0;
      for (let id = 0; id < weights.counts.length; id++) {
        if (id === a || id === b || weights.counts[id]! < 5) continue;
        if (cosine(rowA, embedding.subarray(id * hidden, (id + 1) * hidden)) > target) closer++;
      }
      return closer;
    };

    it('related Cranfield words are nearest neighbours', async () => {
      const { testWeights, HIDDEN } = await import('../fixtures/make-models.ts');
      const randomRows = testWeights().embedding;
      for (const [a, b] of RELATED) {
        const [ia, ib] = [single(a), single(b)];
        expect(rank(weights.embedding, weights.hidden, ia, ib), `${a} -> ${b}`).toBeLessThan(10);
        // The same check fails on the tiny model's random rows, so it measures something.
        expect(rank(randomRows, HIDDEN, ia, ib), `tiny ${a} -> ${b}`).toBeGreaterThan(100);
      }
      // Unrelated words are not near.
      expect(rank(weights.embedding, weights.hidden, single(' wing'), single(' heat'))).toBeGreaterThan(100);
    });

    it('one token gets different vectors in different contexts, still nearest to itself', async () => {
      const texts = ['measured pressure on the surface of a cone', 'stagnation pressure behind a normal shock wave'];
      const id = single(' pressure');
      const vectorsOf = async (search: ColbertSearch): Promise<{ same: number; nearestOther: number }> => {
        const [a, b] = await search.encodeDocuments(texts);
        const va = row(a!, a!.ids.indexOf(id));
        const vb = row(b!, b!.ids.indexOf(id));
        let nearestOther = -1;
        for (let i = 0; i < b!.tokens; i++) if (b!.ids[i] !== id) nearestOther = Math.max(nearestOther, cosine(va, row(b!, i)));
        return { same: cosine(va, vb), nearestOther };
      };
      const contextual = await vectorsOf(tjs);
      const random = await vectorsOf(tiny);
      console.log(`[contextual] " pressure" in two contexts: cosine ${contextual.same.toFixed(3)} (tiny model ${random.same.toFixed(3)}); nearest other token ${contextual.nearestOther.toFixed(3)}`);
      expect(contextual.same).toBeLessThan(0.9);
      expect(random.same).toBeGreaterThan(0.97);
      expect(contextual.same).toBeGreaterThan(contextual.nearestOther);
    });

    it('token vectors cluster by meaning and spread by context (the tiny model: random points, one per token id)', async () => {
      const { docs } = await loadCranfield(CRANFIELD_DIR);
      const texts = docs.filter((d) => d.text.trim() !== '').slice(0, 150).map((d) => d.text);
      const measure = async (search: ColbertSearch): Promise<{ relative: number; spread: number; distinct: number }> => {
        const byId = new Map<number, Float32Array[]>();
        for (const m of await search.encodeDocuments(texts)) {
          for (let i = 0; i < m.tokens; i++) {
            const list = byId.get(m.ids[i]!) ?? [];
            list.push(row(m, i));
            byId.set(m.ids[i]!, list);
          }
        }
        // One point per distinct token seen 3+ times: its mean vector, normalised.
        const means: Float32Array[] = [];
        let spread = 0;
        let occurrences = 0;
        for (const list of byId.values()) {
          if (list.length < 3) continue;
          const mean = new Float32Array(128);
          for (const v of list) for (let d = 0; d < 128; d++) mean[d]! += v[d]!;
          const norm = Math.hypot(...mean);
          for (let d = 0; d < 128; d++) mean[d]! /= norm;
          means.push(mean);
          for (const v of list) spread += 1 - cosine(v, mean);
          occurrences += list.length;
        }
        const n = means.length;
        const points = new Float32Array(n * 128);
        means.forEach((m, p) => points.set(m, p * 128));
        const centre = new Float64Array(128);
        for (let p = 0; p < n; p++) for (let d = 0; d < 128; d++) centre[d]! += points[p * 128 + d]! / n;
        let variance = 0;
        for (let p = 0; p < n; p++) for (let d = 0; d < 128; d++) variance += (points[p * 128 + d]! - centre[d]!) ** 2 / n;
        return { relative: kmeans(points, n, 128, 64, { iterations: 10 }).distortion / variance, spread: spread / occurrences, distinct: n };
      };
      const contextual = await measure(tjs);
      const random = await measure(tiny);
      console.log(
        `[contextual] ${contextual.distinct} distinct tokens: k-means (k=64) distortion / variance ${contextual.relative.toFixed(3)} (tiny ${random.relative.toFixed(3)}); ` +
          `mean 1 - cos(occurrence, its token's mean) ${contextual.spread.toFixed(3)} (tiny ${random.spread.toFixed(4)})`,
      );
      expect(contextual.distinct).toBe(random.distinct);
      expect(contextual.relative).toBeLessThan(0.9 * random.relative);
      expect(contextual.spread).toBeGreaterThan(0.04);
      expect(random.spread).toBeLessThan(0.02);
    }, 300_000);
  });
});

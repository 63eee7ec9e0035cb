/**
 * A small clustered collection (./clusters.ts) encoded by a trained codec, laid out as the
 * compressed stages read it: codes and residuals of every token in document order, and per
 * document its first token and token count. Slot 3 is emptied (count 0), as a deleted document
 * is, so the stages' tests see an empty slot score 0.
 */
import { assignCodes, trainCodec } from '../../src/score/train.ts';
import { encodeResidual, residualBytes, type ResidualBits } from '../../src/store/residual.ts';
import { clusteredData } from './clusters.ts';

const DIM = 128;

/** `docs` documents and `queries` queries of `clusteredData` (dim 128, `seed`), encoded by a codec of 32 centroids at `nbits`. */
export async function encodedClusters(nbits: ResidualBits, docs: number, queries: number, seed: number) {
  const data = clusteredData({ docs, queries, seed });
  const rows = data.docs.reduce((n, d) => n + d.embedding.tokens, 0);
  const all = new Float32Array(rows * DIM);
  const starts = new Uint32Array(data.docs.length);
  const counts = new Uint32Array(data.docs.length);
  let at = 0;
  data.docs.forEach((d, i) => {
    all.set(d.embedding.data, at * DIM);
    starts[i] = at;
    counts[i] = d.embedding.tokens;
    at += d.embedding.tokens;
  });
  const { codec, tree } = await trainCodec(all, rows, DIM, { nbits, centroids: 32 });
  const codes = new Uint16Array(rows);
  assignCodes(all, 0, rows, DIM, codec.centroids, tree, codes);
  const bytes = residualBytes(DIM, nbits);
  const residuals = new Uint8Array(rows * bytes);
  for (let r = 0; r < rows; r++) encodeResidual(codec, all, r * DIM, codes[r]!, residuals, r * bytes);
  counts[3] = 0;
  return { data, codec, rows, view: { codes, residuals, starts, counts } };
}

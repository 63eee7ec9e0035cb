/**
 * PyLate's hierarchical token pooling of documents (never queries): the first token (the
 * document's [CLS]) is kept apart as it is; the other tokens are clustered by Ward linkage over
 * the rows of their cosine-distance matrix (`1 - <a, b>`, each row an observation, as SciPy's
 * `linkage(distances, method='ward')` treats the square matrix PyLate passes it), cut into at most
 * `max(floor(n / poolFactor), 1)` clusters (SciPy's `maxclust`), and each cluster becomes the mean
 * of its tokens (not re-normalised). Pooled rows come in cluster order (by first member), then the
 * kept first token; MaxSim does not depend on row order. Token ids of pooled rows are -1.
 */
import type { TokenMatrix } from '../types.ts';

/** Pool factors supported. */
export const POOL_FACTORS: readonly number[] = Object.freeze([1, 2, 3]);

/** The pooled matrix of a document (the same matrix when `poolFactor` is 1 or it has at most 2 tokens). */
export function poolTokens(matrix: TokenMatrix, poolFactor: number): TokenMatrix {
  return poolClusters(matrix, poolFactor).matrix;
}

/** A pooled document and, per pooled row, the rows of the original matrix it is the mean of (ascending). */
export interface PooledDocument {
  matrix: TokenMatrix;
  members: number[][];
}

/** {@link poolTokens} with each pooled row's members (explanations point a pooled row at its words). */
export function poolClusters(matrix: TokenMatrix, poolFactor: number): PooledDocument {
  const { data, dim } = matrix;
  const n = matrix.tokens - 1;
  const unchanged = (): PooledDocument => ({ matrix, members: Array.from({ length: matrix.tokens }, (_, i) => [i]) });
  if (poolFactor <= 1 || n <= 1) return unchanged();
  const target = Math.max(Math.floor(n / poolFactor), 1);
  if (target >= n) return unchanged();
  const base = dim; // rows 1.. are pooled
  // Observations: rows of the distance matrix.
  const obs = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    for (let b = a; b < n; b++) {
      let s = 0;
      const ao = base + a * dim;
      const bo = base + b * dim;
      for (let d = 0; d < dim; d++) s += data[ao + d]! * data[bo + d]!;
      obs[a * n + b] = 1 - s;
      obs[b * n + a] = 1 - s;
    }
  }
  // Ward distances between the current clusters (Lance-Williams updates), starting from Euclidean distances.
  const dist = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      let s = 0;
      for (let d = 0; d < n; d++) {
        const x = obs[a * n + d]! - obs[b * n + d]!;
        s += x * x;
      }
      dist[a * n + b] = dist[b * n + a] = Math.sqrt(s);
    }
  }
  const size = new Float64Array(n).fill(1);
  const alive = new Uint8Array(n).fill(1);
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  for (let clusters = n; clusters > target; clusters--) {
    let bi = -1;
    let bj = -1;
    let best = Infinity;
    for (let a = 0; a < n; a++) {
      if (!alive[a]) continue;
      for (let b = a + 1; b < n; b++) {
        if (!alive[b]) continue;
        const v = dist[a * n + b]!;
        if (v < best) {
          best = v;
          bi = a;
          bj = b;
        }
      }
    }
    // Merge bj into bi.
    const ni = size[bi]!;
    const nj = size[bj]!;
    for (let k = 0; k < n; k++) {
      if (!alive[k] || k === bi || k === bj) continue;
      const nk = size[k]!;
      const dik = dist[bi * n + k]!;
      const djk = dist[bj * n + k]!;
      const v = Math.sqrt(Math.max(0, ((ni + nk) * dik * dik + (nj + nk) * djk * djk - nk * best * best) / (ni + nj + nk)));
      dist[bi * n + k] = dist[k * n + bi] = v;
    }
    size[bi] = ni + nj;
    alive[bj] = 0;
    for (let k = 0; k < n; k++) if (parent[k] === bj) parent[k] = bi;
  }
  // Cluster means, clusters in order of their first member.
  const order: number[] = [];
  const seen = new Set<number>();
  for (let k = 0; k < n; k++) {
    if (!seen.has(parent[k]!)) {
      seen.add(parent[k]!);
      order.push(parent[k]!);
    }
  }
  const rows = order.length + 1;
  const out = new Float32Array(rows * dim);
  const sums = new Float64Array(dim);
  const members: number[][] = [];
  order.forEach((root, r) => {
    sums.fill(0);
    const rowsOf: number[] = [];
    for (let k = 0; k < n; k++) {
      if (parent[k] !== root) continue;
      rowsOf.push(k + 1);
      for (let d = 0; d < dim; d++) sums[d]! += data[base + k * dim + d]!;
    }
    for (let d = 0; d < dim; d++) out[r * dim + d] = sums[d]! / rowsOf.length;
    members.push(rowsOf);
  });
  out.set(data.subarray(0, dim), order.length * dim);
  members.push([0]);
  const ids = new Int32Array(rows).fill(-1);
  ids[rows - 1] = matrix.ids[0] ?? -1;
  return { matrix: { data: out, tokens: rows, dim, ids }, members };
}

/**
 * Small dense linear algebra for the test fixtures, in float64 and deterministic (fixed loop
 * orders, seeded draws): a truncated SVD of a symmetric operator by randomised subspace iteration,
 * the Jacobi eigen-decomposition it needs, Gram-Schmidt, and Lloyd's k-means for the tests that
 * check how token vectors cluster. Sizes here are thousands of rows by ~150 columns.
 */
import { gaussians as normals, mulberry32 } from './rng.ts';

/** `n` standard normal draws (Box-Muller over mulberry32). */
export { gaussians as normals } from './rng.ts';

/**
 * Orthonormalises the columns of the row-major [rows, cols] matrix `a` in place (modified
 * Gram-Schmidt, twice for stability). A column that collapses (linearly dependent) is replaced by
 * a fresh random direction orthogonal to the others, so the result always has `cols` orthonormal columns.
 */
export function orthonormalize(a: Float64Array, rows: number, cols: number, seed = 1): void {
  const columns = Array.from({ length: cols }, (_, c) => {
    const col = new Float64Array(rows);
    for (let r = 0; r < rows; r++) col[r] = a[r * cols + c]!;
    return col;
  });
  let refill = seed;
  for (let c = 0; c < cols; c++) {
    const v = columns[c]!;
    const before = Math.sqrt(dot(v, v));
    let norm = before;
    // "Twice is enough" (Kahan, Parlett): a second pass only when the first cancelled much of v.
    for (let pass = 0; pass < 2; pass++) {
      const start = norm;
      for (let p = 0; p < c; p++) {
        const u = columns[p]!;
        const d = dot(u, v);
        for (let r = 0; r < rows; r++) v[r]! -= d * u[r]!;
      }
      norm = Math.sqrt(dot(v, v));
      if (norm > 0.7 * start) break;
    }
    if (!(norm > 1e-10 * Math.max(before, 1e-300))) {
      v.set(normals(rows, (refill += 7919)));
      c--; // orthogonalise the fresh column again
      continue;
    }
    for (let r = 0; r < rows; r++) v[r]! /= norm;
  }
  for (let c = 0; c < cols; c++) for (let r = 0; r < rows; r++) a[r * cols + c] = columns[c]![r]!;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * Eigen-decomposition of the symmetric row-major [n, n] matrix `a` (cyclic Jacobi). Returns the
 * eigenvalues in descending order and the eigenvectors as the columns of a row-major [n, n] matrix.
 */
export function symmetricEigen(a: Float64Array, n: number, sweeps = 60): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < sweeps; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) (i === j ? (total += m[i * n + j]! ** 2) : (off += m[i * n + j]! ** 2));
    if (off <= 1e-22 * (total + off)) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const app = m[p * n + p]!;
        const aqq = m[q * n + q]!;
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p]!;
          const mkq = m[k * n + q]!;
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k]!;
          const mqk = m[q * n + k]!;
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => m[y * n + y]! - m[x * n + x]! || x - y);
  const values = Float64Array.from(order, (i) => m[i * n + i]!);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src]!;
  });
  return { values, vectors };
}

/** A sparse symmetric matrix in CSR form (both triangles stored). */
export interface SparseSymmetric {
  n: number;
  rowStart: Int32Array;
  cols: Int32Array;
  values: Float64Array;
}

/** Y = M X for the row-major [n, width] matrix X. */
export function sparseTimes(m: SparseSymmetric, x: Float64Array, width: number): Float64Array {
  const y = new Float64Array(m.n * width);
  for (let i = 0; i < m.n; i++) {
    const yi = i * width;
    for (let e = m.rowStart[i]!; e < m.rowStart[i + 1]!; e++) {
      const v = m.values[e]!;
      const xj = m.cols[e]! * width;
      for (let c = 0; c < width; c++) y[yi + c]! += v * x[xj + c]!;
    }
  }
  return y;
}

/**
 * Truncated SVD of a sparse symmetric matrix by randomised subspace iteration (Halko, Martinsson
 * and Tropp 2011): `k` singular values (descending) and left singular vectors as the columns of a
 * row-major [n, k] matrix. Deterministic for a seed.
 */
export function truncatedSvd(m: SparseSymmetric, k: number, options: { oversample?: number; iterations?: number; seed?: number } = {}): { values: Float64Array; vectors: Float64Array } {
  const { oversample = 16, iterations = 3, seed = 1 } = options;
  const n = m.n;
  const l = Math.min(n, k + oversample);
  let q = sparseTimes(m, normals(n * l, seed), l);
  orthonormalize(q, n, l, seed);
  for (let it = 0; it < iterations; it++) {
    q = sparseTimes(m, q, l);
    orthonormalize(q, n, l, seed + it + 1);
  }
  // B = Qᵀ M is [l, n]; its left singular vectors are the eigenvectors of B Bᵀ = (M Q)ᵀ (M Q).
  const mq = sparseTimes(m, q, l);
  const gram = new Float64Array(l * l);
  for (let r = 0; r < n; r++) {
    const row = r * l;
    for (let a = 0; a < l; a++) {
      const x = mq[row + a]!;
      if (x === 0) continue;
      for (let b = a; b < l; b++) gram[a * l + b]! += x * mq[row + b]!;
    }
  }
  for (let a = 0; a < l; a++) for (let b = 0; b < a; b++) gram[a * l + b] = gram[b * l + a]!;
  const eig = symmetricEigen(gram, l);
  const kk = Math.min(k, l);
  const values = Float64Array.from({ length: kk }, (_, i) => Math.sqrt(Math.max(eig.values[i]!, 0)));
  const vectors = new Float64Array(n * kk);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < kk; c++) {
      let s = 0;
      for (let a = 0; a < l; a++) s += q[r * l + a]! * eig.vectors[a * l + c]!;
      vectors[r * kk + c] = s;
    }
  }
  return { values, vectors };
}

/** What {@link kmeans} returns. */
export interface KMeansResult {
  centroids: Float32Array;
  assignment: Int32Array;
  /** Mean squared distance of a point to its centroid. */
  distortion: number;
}

/**
 * Lloyd's k-means on `n` row-major points of `dim` dimensions: k-means++ seeding, `iterations`
 * rounds, deterministic for a seed. Empty clusters keep their previous centre.
 */
export function kmeans(points: Float32Array, n: number, dim: number, k: number, options: { iterations?: number; seed?: number } = {}): KMeansResult {
  const { iterations = 20, seed = 7 } = options;
  const next = mulberry32(seed);
  const centroids = new Float32Array(k * dim);
  const nearest = new Float64Array(n).fill(Infinity);
  const dist2 = (p: number, c: number): number => {
    let s = 0;
    for (let d = 0; d < dim; d++) s += (points[p * dim + d]! - centroids[c * dim + d]!) ** 2;
    return s;
  };
  let chosen = Math.floor(next() * n);
  for (let c = 0; c < k; c++) {
    centroids.set(points.subarray(chosen * dim, (chosen + 1) * dim), c * dim);
    let total = 0;
    for (let p = 0; p < n; p++) total += (nearest[p] = Math.min(nearest[p]!, dist2(p, c)));
    let target = next() * total;
    chosen = n - 1;
    for (let p = 0; p < n; p++) if ((target -= nearest[p]!) <= 0) { chosen = p; break; }
  }
  const assignment = new Int32Array(n);
  let distortion = 0;
  for (let it = 0; it <= iterations; it++) {
    distortion = 0;
    for (let p = 0; p < n; p++) {
      let best = 0;
      let bestD = Infinity;
      for (let c = 0; c < k; c++) {
        const d = dist2(p, c);
        if (d < bestD) (bestD = d), (best = c);
      }
      assignment[p] = best;
      distortion += bestD;
    }
    distortion /= n;
    if (it === iterations) break;
    const sums = new Float64Array(k * dim);
    const counts = new Int32Array(k);
    for (let p = 0; p < n; p++) {
      const c = assignment[p]!;
      counts[c]!++;
      for (let d = 0; d < dim; d++) sums[c * dim + d]! += points[p * dim + d]!;
    }
    for (let c = 0; c < k; c++) if (counts[c]) for (let d = 0; d < dim; d++) centroids[c * dim + d] = sums[c * dim + d]! / counts[c]!;
  }
  return { centroids, assignment, distortion };
}

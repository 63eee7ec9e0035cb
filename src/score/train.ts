/**
 * Training the compressed index's codec (../store/residual.ts): spherical k-means for the
 * centroids and buckets for the residuals (ColBERTv2's quantiles, refined by Lloyd-Max, learned
 * from sampled tokens held out of k-means), plus assigning tokens to their centroid. These are MaxSim-shaped loops (dot products of unit vectors), so they live in score/.
 *
 * Centroids come in two levels so that training and assignment stay affordable in JavaScript at
 * centroid counts in the thousands ({@link centroidCountFor}): a coarse k-means of
 * about sqrt(count) centroids, then a k-means inside each coarse cluster, its share of the count
 * in proportion to its members. The fine centroids are ordered by coarse cluster, so coarse
 * cluster `g` owns fine centroids `starts[g] .. starts[g + 1]`. Assignment compares a token with
 * every coarse centroid and then with the fine centroids of its best {@link ASSIGN_PROBES} coarse
 * clusters: an approximation of the nearest centroid (the codec only needs *a* centroid; a worse
 * one only widens the residual). Everything is deterministic for a seed.
 */
import { centroidFloats, halfCentroids, type ResidualBits, type ResidualCodec } from '../store/residual.ts';
import { bindCentroids, boundTable, residentCentroids, type BlockDots } from './centroid-simd.ts';
import { dot } from './cpu.ts';

/** Fewest tokens before an index trains centroids; smaller indexes are scored exhaustively. */
export const MIN_TRAIN_TOKENS = 4096;
/** Most centroids (codes stay 16-bit). */
export const MAX_CENTROIDS = 1 << 16;
/** Coarse clusters whose fine centroids a token is compared with. */
export const ASSIGN_PROBES = 2;
/** Residual statistics (the buckets, {@link trainBuckets}) come from at most this many sampled tokens. */
export const BUCKET_SAMPLE_ROWS = 8192;
/**
 * Share of the training sample held out of k-means for the residual statistics (as ColBERTv2
 * does, 5%): the rows k-means fitted lie closer to their centroids than any other token (at 8
 * sampled tokens per centroid, bucket weights about 12% too small), so buckets learned from them
 * decode every other token with too small a residual.
 */
export const BUCKET_HOLDOUT = 0.05;
/** Fewest held-out rows; a smaller sample takes its residual statistics from the k-means rows. */
export const MIN_HOLDOUT_ROWS = 64;
/** Lloyd-Max refinements of the quantile buckets in {@link trainBuckets}. */
export const BUCKET_ITERATIONS = 100;

/** The two-level structure over a codec's centroids (see the module comment). */
export interface CentroidTree {
  /** `groups * dim` coarse centroids, rows L2-normalised. */
  coarse: Float32Array;
  /** `groups + 1` ascending fine-centroid boundaries. */
  starts: Uint32Array;
}

/** A trained codec and the tree that speeds up assigning tokens to it. */
export interface TrainedCodec {
  codec: ResidualCodec;
  tree: CentroidTree;
  /** Tokens the centroids were trained for (the index's size at training time). */
  trainedTokens: number;
}

/** Options of {@link trainCodec}. */
export interface TrainOptions {
  nbits: ResidualBits;
  /** Centroid count; default {@link centroidCountFor} the token count. */
  centroids?: number;
  /** k-means iterations per level. Default 6. */
  iterations?: number;
  /** Seed of the sampling and initialisation. Default 1. */
  seed?: number;
  /** Most sampled tokens per centroid. Default {@link SAMPLE_PER_CENTROID}. */
  samplePerCentroid?: number;
  /** Called between steps; training awaits it, so a caller can yield to other work. */
  yieldEvery?: () => Promise<void>;
}

/**
 * Fewest tokens per centroid the count allows. A centroid is resident as `2 * dim` bytes (fp16),
 * 256 at dim 128, so at this bound the centroid table costs at most 1 byte per token there.
 */
export const TOKENS_PER_CENTROID = 256;
/**
 * Fewest centroids a codec is trained with: 16 KiB at dim 128, so under 1 B per token from 16k
 * tokens. Fewer were too coarse for centroid interaction at small sizes (16 centroids over 26k
 * tokens of 600 documents kept 7 of an exhaustive top 10 among 256 survivors; 64 keep 8-10).
 */
export const MIN_CENTROIDS = 64;
/** Sampled tokens per centroid that k-means trains on (an index samples at most its MAX_TRAIN_SAMPLE). */
export const SAMPLE_PER_CENTROID = 64;

/**
 * The centroid count for an index of `tokens` tokens: `2^floor(log2(min(16 sqrt(tokens), tokens / 256)))`,
 * at least {@link MIN_CENTROIDS} (64) and at most {@link MAX_CENTROIDS}. `16 sqrt(tokens)` is PLAID's
 * count, sized for a server's IVF; in a browser the bound is memory, so a centroid must also stand
 * for at least {@link TOKENS_PER_CENTROID} tokens. The second bound is the tighter one below
 * 2^24 tokens (about 16.7M): 256 centroids at 100k tokens, 2,048 at 1M, 32,768 at 10M (as PLAID's).
 */
export function centroidCountFor(tokens: number): number {
  const want = Math.min(16 * Math.sqrt(tokens), tokens / TOKENS_PER_CENTROID, MAX_CENTROIDS);
  return Math.max(MIN_CENTROIDS, 2 ** Math.floor(Math.log2(Math.max(1, want))));
}

/** Deterministic uniform PRNG in [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normaliseRows(data: Float32Array, rows: number, dim: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const n = Math.sqrt(dot(data, o, data, o, dim));
    if (n > 0) for (let d = 0; d < dim; d++) data[o + d]! /= n;
  }
}

/** The row of `centroids` (rows `from .. to`) with the largest dot product with `data[o..]` (four rows per step; ties to the lower row). */
function nearestIn(data: Float32Array, o: number, centroids: Float32Array, from: number, to: number, dim: number): number {
  let best = from;
  let bestScore = -Infinity;
  let c = from;
  for (; c + 3 < to; c += 4) {
    const a = c * dim;
    const b = a + dim;
    const e = b + dim;
    const f = e + dim;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let d = 0; d < dim; d++) {
      const x = data[o + d]!;
      s0 += x * centroids[a + d]!;
      s1 += x * centroids[b + d]!;
      s2 += x * centroids[e + d]!;
      s3 += x * centroids[f + d]!;
    }
    if (s0 > bestScore) {
      bestScore = s0;
      best = c;
    }
    if (s1 > bestScore) {
      bestScore = s1;
      best = c + 1;
    }
    if (s2 > bestScore) {
      bestScore = s2;
      best = c + 2;
    }
    if (s3 > bestScore) {
      bestScore = s3;
      best = c + 3;
    }
  }
  for (; c < to; c++) {
    const s = dot(data, o, centroids, c * dim, dim);
    if (s > bestScore) {
      bestScore = s;
      best = c;
    }
  }
  return best;
}

/**
 * Spherical k-means of the rows listed in `members` (indexes into `data`), `k` centroids,
 * k-means++ initialised. Returns `k * dim` unit rows; an empty cluster is
 * re-seeded from a random member.
 */
export function kmeans(data: Float32Array, dim: number, members: Uint32Array, k: number, iterations: number, random: () => number): Float32Array {
  const n = members.length;
  const centroids = new Float32Array(k * dim);
  if (n === 0) return centroids;
  // k-means++ initialisation: each next centroid is a member drawn with probability in
  // proportion to its squared distance (2 - 2 cos) from the nearest centroid chosen so far.
  const far = new Float64Array(n).fill(Infinity);
  let row = members[Math.floor(random() * n)]!;
  for (let c = 0; c < k; c++) {
    centroids.set(data.subarray(row * dim, row * dim + dim), c * dim);
    if (c === k - 1) break;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const d2 = Math.max(0, 2 - 2 * dot(data, members[i]! * dim, centroids, c * dim, dim));
      if (d2 < far[i]!) far[i] = d2;
      total += far[i]!;
    }
    let pick = random() * total;
    let i = 0;
    if (total > 0) {
      for (; i < n - 1; i++) {
        pick -= far[i]!;
        if (pick < 0) break;
      }
    } else {
      i = Math.floor(random() * n);
    }
    row = members[i]!;
  }
  normaliseRows(centroids, k, dim);
  const assign = new Uint32Array(n);
  const sums = new Float64Array(k * dim);
  const counts = new Uint32Array(k);
  const rowAt = (i: number) => members[i]! * dim;
  for (let it = 0; it < iterations; it++) {
    nearestRows(data, rowAt, n, dim, centroids, assign);
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const c = assign[i]!;
      counts[c]!++;
      const o = members[i]! * dim;
      const so = c * dim;
      for (let d = 0; d < dim; d++) sums[so + d]! += data[o + d]!;
    }
    for (let c = 0; c < k; c++) {
      const so = c * dim;
      if (counts[c] === 0) {
        const m = members[Math.floor(random() * n)]! * dim;
        for (let d = 0; d < dim; d++) centroids[so + d] = data[m + d]!;
      } else {
        for (let d = 0; d < dim; d++) centroids[so + d] = sums[so + d]!;
      }
    }
    normaliseRows(centroids, k, dim);
  }
  return centroids;
}

/** Coarse clusters of a tree. */
export function treeGroups(tree: CentroidTree, dim: number): number {
  return tree.coarse.length / dim;
}

/**
 * The centroid of each of `rows` rows of `data` (from row `from`), through the tree, into
 * `out[at..]`. Without a tree every centroid is compared (exact nearest). Runs on the WASM SIMD
 * block kernel (./centroid-simd.ts) where it is available, else in plain JS
 * ({@link assignCodesJs}); both pick the same centroid up to float32 rounding of near ties.
 * `centroids` are a codec's halves (../store/residual.ts); they (and the tree) must not change
 * after they are first passed here: their table in the kernel's memory is kept per array
 * (shared with the query-centroid scores, ./centroid-simd.ts `boundTable`).
 */
export function assignCodes(data: Float32Array, from: number, rows: number, dim: number, centroids: Uint16Array, tree: CentroidTree | null, out: Uint16Array | Uint32Array, at = 0): void {
  assignRows(data, (r) => (from + r) * dim, rows, dim, centroids, tree, out, at);
}

/** {@link assignCodes} in plain JS only (the reference the SIMD path is tested against). */
export function assignCodesJs(data: Float32Array, from: number, rows: number, dim: number, centroids: Uint16Array, tree: CentroidTree | null, out: Uint16Array | Uint32Array, at = 0): void {
  assignRowsJs(data, (r) => (from + r) * dim, rows, dim, centroidFloats({ centroids }), tree, out, at);
}

/**
 * For each of `n` rows (row `r` at `data[rowAt(r)..]`), the best of centroids `from .. to` of
 * `bd`'s table merged into `best`/`bestScore` (a higher score wins; on equal scores the lower centroid).
 */
function mergeNearest(bd: BlockDots, data: Float32Array, rowAt: (r: number) => number, n: number, from: number, to: number, best: Int32Array, bestScore: Float32Array, bo = 0): void {
  const width = to - from;
  const block = bd.blockRows(width);
  for (let r0 = 0; r0 < n; r0 += block) {
    const m = Math.min(block, n - r0);
    const { t, stride } = bd.scores(data, (r) => rowAt(r0 + r), m, 0, from, to);
    for (let c = 0; c < width; c++) {
      const o = c * stride;
      const id = from + c;
      for (let i = 0; i < m; i++) {
        const s = t[o + i]!;
        const b = bo + r0 + i;
        if (s > bestScore[b]! || (s === bestScore[b]! && id < best[b]!)) {
          bestScore[b] = s;
          best[b] = id;
        }
      }
    }
  }
}

/** Exact nearest of all `centroids` for `n` rows into `out` (SIMD where available). */
function nearestRows(data: Float32Array, rowAt: (r: number) => number, n: number, dim: number, centroids: Float32Array, out: Uint32Array | Uint16Array, at = 0): void {
  const count = centroids.length / dim;
  const bd = bindCentroids(dim, [centroids]);
  if (!bd) {
    for (let i = 0; i < n; i++) out[at + i] = nearestIn(data, rowAt(i), centroids, 0, count, dim);
    return;
  }
  const block = bd.blockRows(count);
  const best = new Int32Array(block);
  const score = new Float32Array(block);
  for (let r0 = 0; r0 < n; r0 += block) {
    const m = Math.min(block, n - r0);
    best.fill(0);
    score.fill(-Infinity);
    mergeNearest(bd, data, (r) => rowAt(r0 + r), m, 0, count, best, score);
    for (let i = 0; i < m; i++) out[at + r0 + i] = best[i]!;
  }
}

function assignRows(data: Float32Array, rowAt: (r: number) => number, rows: number, dim: number, centroids: Uint16Array, tree: CentroidTree | null, out: Uint16Array | Uint32Array, at: number): void {
  const bd = rows === 0 ? null : boundTable(dim, centroids);
  const cd = bd && tree ? boundTable(dim, tree.coarse) : null;
  if (!bd || (tree && !cd)) return assignRowsJs(data, rowAt, rows, dim, centroidFloats({ centroids }), tree, out, at);
  const count = centroids.length / dim;
  if (!tree || !cd) {
    const best = new Int32Array(rows);
    const score = new Float32Array(rows).fill(-Infinity);
    mergeNearest(bd, data, rowAt, rows, 0, count, best, score);
    for (let r = 0; r < rows; r++) out[at + r] = best[r]!;
    return;
  }
  const groups = treeGroups(tree, dim);
  const probes = Math.min(ASSIGN_PROBES, groups);
  const block = Math.min(cd.blockRows(groups), rows);
  const topG = new Int32Array(block * probes);
  const topS = new Float32Array(block * probes);
  const best = new Int32Array(block);
  const bestScore = new Float32Array(block);
  const perGroup = new Uint32Array(groups + 1);
  const members = new Uint32Array(block * probes);
  const memberScore = new Float32Array(block * probes);
  const memberBest = new Int32Array(block * probes);
  for (let r0 = 0; r0 < rows; r0 += block) {
    const m = Math.min(block, rows - r0);
    const blockAt = (r: number) => rowAt(r0 + r);
    // Coarse: each row's best `probes` groups (ties to the lower group).
    topG.fill(-1);
    topS.fill(-Infinity);
    const { t, stride } = cd.scores(data, blockAt, m, 0, 0, groups);
    for (let g = 0; g < groups; g++) {
      const o = g * stride;
      for (let i = 0; i < m; i++) {
        const s = t[o + i]!;
        const base = i * probes;
        if (s <= topS[base + probes - 1]!) continue;
        let p = probes - 1;
        while (p > 0 && topS[base + p - 1]! < s) {
          topS[base + p] = topS[base + p - 1]!;
          topG[base + p] = topG[base + p - 1]!;
          p--;
        }
        topS[base + p] = s;
        topG[base + p] = g;
      }
    }
    // Rows of each probed group (counting sort), then each group's fine centroids against its rows.
    perGroup.fill(0);
    for (let e = 0; e < m * probes; e++) if (topG[e]! >= 0) perGroup[topG[e]! + 1]!++;
    for (let g = 0; g < groups; g++) perGroup[g + 1]! += perGroup[g]!;
    const fill = perGroup.slice(0, groups);
    for (let e = 0; e < m * probes; e++) {
      const g = topG[e]!;
      if (g >= 0) members[fill[g]!++] = Math.floor(e / probes);
    }
    best.fill(0);
    bestScore.fill(-Infinity);
    for (let g = 0; g < groups; g++) {
      const lo = perGroup[g]!;
      const hi = perGroup[g + 1]!;
      if (lo === hi || tree.starts[g] === tree.starts[g + 1]) continue;
      memberBest.fill(0, 0, hi - lo);
      memberScore.fill(-Infinity, 0, hi - lo);
      mergeNearest(bd, data, (k) => blockAt(members[lo + k]!), hi - lo, tree.starts[g]!, tree.starts[g + 1]!, memberBest, memberScore);
      for (let k = 0; k < hi - lo; k++) {
        const i = members[lo + k]!;
        const s = memberScore[k]!;
        const c = memberBest[k]!;
        if (s > bestScore[i]! || (s === bestScore[i]! && c < best[i]!)) {
          bestScore[i] = s;
          best[i] = c;
        }
      }
    }
    for (let i = 0; i < m; i++) out[at + r0 + i] = best[i]!;
  }
}

function assignRowsJs(data: Float32Array, rowAt: (r: number) => number, rows: number, dim: number, centroids: Float32Array, tree: CentroidTree | null, out: Uint16Array | Uint32Array, at: number): void {
  const count = centroids.length / dim;
  if (!tree) {
    for (let r = 0; r < rows; r++) out[at + r] = nearestIn(data, rowAt(r), centroids, 0, count, dim);
    return;
  }
  const groups = treeGroups(tree, dim);
  const probes = Math.min(ASSIGN_PROBES, groups);
  const topG = new Int32Array(probes);
  const topS = new Float64Array(probes);
  for (let r = 0; r < rows; r++) {
    const o = rowAt(r);
    topG.fill(-1);
    topS.fill(-Infinity);
    for (let g = 0; g < groups; g++) {
      const s = dot(data, o, tree.coarse, g * dim, dim);
      if (s <= topS[probes - 1]!) continue;
      let p = probes - 1;
      while (p > 0 && topS[p - 1]! < s) {
        topS[p] = topS[p - 1]!;
        topG[p] = topG[p - 1]!;
        p--;
      }
      topS[p] = s;
      topG[p] = g;
    }
    let best = 0;
    let bestScore = -Infinity;
    for (let p = 0; p < probes; p++) {
      const g = topG[p]!;
      if (g < 0 || tree.starts[g] === tree.starts[g + 1]) continue;
      const c = nearestIn(data, o, centroids, tree.starts[g]!, tree.starts[g + 1]!, dim);
      const s = dot(data, o, centroids, c * dim, dim);
      if (s > bestScore || (s === bestScore && c < best)) {
        bestScore = s;
        best = c;
      }
    }
    out[at + r] = best;
  }
}

/**
 * Bucket cutoffs and weights from residual values: ColBERTv2's equal-probability buckets (cutoffs
 * at the quantiles `i / 2^nbits`, i = 1 .. 2^nbits - 1, of all residual values), then `iterations`
 * Lloyd-Max steps, each making every weight the mean of the values in its bucket and every cutoff
 * the midpoint of the two weights beside it. Those lower the squared error of the decoded values:
 * on Gaussian values from 0.139 of their variance (quantile buckets decoded to their means) to
 * 0.1175 at 2 bits, and from 0.022 to 0.0095 at 4 bits (bench/compressed-quality.ts measures it on
 * the indexes). `iterations: 0` gives the quantile cutoffs with each weight its bucket's mean. A
 * bucket that is empty keeps its weight (the quantile midpoint when it is empty from the start).
 * Buckets follow the codec's rule: a value is in bucket `b`, the number of cutoffs at or below it.
 */
export function trainBuckets(values: Float32Array, nbits: ResidualBits, iterations = BUCKET_ITERATIONS): { cutoffs: Float32Array; weights: Float32Array } {
  const buckets = 1 << nbits;
  const sorted = Float32Array.from(values).sort();
  const n = sorted.length;
  const at = (q: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.max(0, Math.floor(q * n)))]!);
  const cutoffs = new Float32Array(buckets - 1).map((_, i) => at((i + 1) / buckets));
  const weights = new Float32Array(buckets).map((_, b) => at((b + 0.5) / buckets));
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i]! + sorted[i]!;
  // The first index whose value is at or above `x` (sorted values make each bucket a contiguous run).
  const lower = (x: number) => {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const means = () => {
    for (let b = 0; b < buckets; b++) {
      const lo = b === 0 ? 0 : lower(cutoffs[b - 1]!);
      const hi = b === buckets - 1 ? n : lower(cutoffs[b]!);
      if (hi > lo) weights[b] = (prefix[hi]! - prefix[lo]!) / (hi - lo);
    }
  };
  means();
  for (let it = 0; it < iterations; it++) {
    for (let b = 0; b < buckets - 1; b++) cutoffs[b] = Math.max(b > 0 ? cutoffs[b - 1]! : -Infinity, (weights[b]! + weights[b + 1]!) / 2);
    means();
  }
  return { cutoffs, weights };
}

/** Rows sampled for training: every row when few, else a seeded sample without repeats, sorted. */
export function sampleRows(total: number, want: number, random: () => number): Uint32Array {
  if (want >= total) return Uint32Array.from({ length: total }, (_, i) => i);
  // Floyd's algorithm: `want` distinct rows.
  const picked = new Set<number>();
  for (let j = total - want; j < total; j++) {
    const t = Math.floor(random() * (j + 1));
    picked.add(picked.has(t) ? j : t);
  }
  return Uint32Array.from(picked).sort();
}

/**
 * Trains a codec on `rows` unit token vectors (`data`, row-major): two-level spherical k-means
 * over a sample, then bucket cutoffs and weights from the residuals of that sample against its
 * assigned centroids. `rows` is the whole index's token count unless `trainedTokens` is given.
 */
export async function trainCodec(data: Float32Array, rows: number, dim: number, options: TrainOptions): Promise<TrainedCodec> {
  const { nbits } = options;
  const random = seededRandom(options.seed ?? 1);
  const iterations = options.iterations ?? 6;
  const pause = options.yieldEvery ?? (async () => undefined);
  const count = Math.max(1, Math.min(options.centroids ?? centroidCountFor(rows), rows, MAX_CENTROIDS));
  const drawn = sampleRows(rows, count * (options.samplePerCentroid ?? SAMPLE_PER_CENTROID), random);
  // Rows held out of k-means for the residual statistics: evenly spaced in the (uniform) sample.
  let held = Math.min(BUCKET_SAMPLE_ROWS, Math.floor(drawn.length * BUCKET_HOLDOUT));
  if (held < MIN_HOLDOUT_ROWS || drawn.length - held < count) held = 0;
  const heldout = new Uint32Array(held);
  const sample = new Uint32Array(drawn.length - held);
  for (let i = 0, h = 0, k = 0; i < drawn.length; i++) {
    if (h < held && Math.floor(((i + 1) * held) / drawn.length) > h) heldout[h++] = drawn[i]!;
    else sample[k++] = drawn[i]!;
  }
  const n = sample.length;
  const groups = Math.max(1, Math.min(count, Math.round(Math.sqrt(count))));
  const coarse = kmeans(data, dim, sample, groups, iterations, random);
  await pause();
  // Members of each coarse cluster.
  const groupOf = new Uint32Array(n);
  const sizes = new Uint32Array(groups);
  nearestRows(data, (i) => sample[i]! * dim, n, dim, coarse, groupOf);
  for (let i = 0; i < n; i++) sizes[groupOf[i]!]!++;
  // Each group's share of the count, in proportion to its members (at least one where it has any, at most its members).
  const share = new Uint32Array(groups);
  let given = 0;
  for (let g = 0; g < groups; g++) {
    share[g] = sizes[g]! === 0 ? 0 : Math.max(1, Math.min(sizes[g]!, Math.floor((count * sizes[g]!) / n)));
    given += share[g]!;
  }
  // Hand out the remainder (or take back an excess) one centroid at a time, largest groups first.
  const bySize = Array.from({ length: groups }, (_, g) => g).sort((a, b) => sizes[b]! - sizes[a]! || a - b);
  for (let guard = 0; given !== count && guard < 4 * count; guard++) {
    const g = bySize[guard % groups]!;
    if (given < count && share[g]! < sizes[g]!) {
      share[g]!++;
      given++;
    } else if (given > count && share[g]! > 1) {
      share[g]!--;
      given--;
    }
  }
  const total = given;
  const centroids = new Float32Array(total * dim);
  const starts = new Uint32Array(groups + 1);
  const memberLists: number[][] = Array.from({ length: groups }, () => []);
  for (let i = 0; i < n; i++) memberLists[groupOf[i]!]!.push(sample[i]!);
  let at = 0;
  for (let g = 0; g < groups; g++) {
    starts[g] = at;
    if (share[g]! > 0) {
      const fine = kmeans(data, dim, Uint32Array.from(memberLists[g]!), share[g]!, iterations, random);
      centroids.set(fine, at * dim);
      at += share[g]!;
    }
    if (g % 16 === 15) await pause();
  }
  starts[groups] = at;
  const tree: CentroidTree = { coarse, starts };
  // The codec's centroids are the k-means rows rounded to halves; residuals are taken against
  // the rounded rows, as every token's will be.
  const halves = halfCentroids(centroids);
  const rounded = centroidFloats({ centroids: halves });
  // Residual statistics of the held-out rows (of every `step`-th k-means row when the sample is
  // too small to hold any out) against the centroids they are assigned to, as every token will be.
  const step = held > 0 ? 1 : Math.max(1, Math.ceil(n / BUCKET_SAMPLE_ROWS));
  const stats = held > 0 ? heldout : sample;
  const nb = held > 0 ? held : Math.ceil(n / step);
  const codes = new Uint32Array(nb);
  const values = new Float32Array(nb * dim);
  assignRows(data, (i) => stats[i * step]! * dim, nb, dim, halves, tree, codes, 0);
  for (let i = 0; i < nb; i++) {
    const o = stats[i * step]! * dim;
    const c = codes[i]! * dim;
    for (let d = 0; d < dim; d++) values[i * dim + d] = data[o + d]! - rounded[c + d]!;
  }
  const { cutoffs, weights } = trainBuckets(values, nbits);
  const codec: ResidualCodec = { dim, nbits, centroids: halves, cutoffs, weights };
  residentCentroids(codec);
  return { codec, tree, trainedTokens: rows };
}

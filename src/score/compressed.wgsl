// The compressed index's scoring stages on the GPU (the WGSL twins of ./compressed-ref.ts), over
// arrays that ./compressed-gpu.ts keeps resident. The codec is ../store/residual.ts:
// - codes: one centroid code per token, as u32 (CODE_BITS 32) or two u16 per u32, low half first
//   (CODE_BITS 16);
// - residuals: the tokens' residual bytes back to back (BYTES = DIM * NBITS / 8 per token, so a
//   token may start mid-word), read as little-endian u32 words: the bucket of dimension d of token
//   j is bits [d * NBITS, (d + 1) * NBITS) of its bytes, bit 0 the low bit of its byte 0;
// - docs: per document (first token, token count);
// - cscores: S[i * C + c] = <q_i, centroid_c>, written by centroid_scores_main and read by the
//   later stages of the same query.
//
// Entry points (each one dispatch):
// - centroid_scores_main: S for every query row and centroid;
// - top_centroids_main: per query row, the `nprobe` best centroids, best first, ties by index;
// - interaction_main: per candidate document, sum over query rows of the max of S[i, code_j]
//   over its tokens (0 without tokens);
// - residual_main: per candidate document, MaxSim against its tokens decoded in the shader
//   (centroid + bucket weight per dimension, L2-normalised; a zero vector stays zero).
// Sums over query rows run in row order on one thread, as the reference does.

// Vector dimension (a multiple of 8).
override DIM: u32 = 128u;
// Residual bits per dimension: 1, 2 or 4.
override NBITS: u32 = 2u;
// Bits per stored code: 32, or 16 (two codes per word).
override CODE_BITS: u32 = 32u;
// Threads per workgroup (at least Q_ROWS and TILE).
override WG: u32 = 64u;
// Query rows held in workgroup memory at once (Q_ROWS * DIM floats).
override Q_ROWS: u32 = 32u;
// Document tokens decoded into workgroup memory per step (residual_main).
override TILE: u32 = 8u;
// Most centroids top_centroids_main selects per query row.
const MAX_PROBE: u32 = 64u;

struct Params {
  // Query rows, and centroids (C).
  q_count: u32,
  centroid_count: u32,
  // Candidate documents, and workgroups per row of the dispatch grid.
  cand_count: u32,
  grid_x: u32,
  // Centroids per query row (top_centroids_main), 1..min(C, MAX_PROBE).
  nprobe: u32,
}

@group(0) @binding(0) var<storage, read> query: array<f32>;
// The codec's centroids as IEEE halves, two per u32 (element e in half e & 1 of word e >> 1, low
// half first), decoded by unpack2x16float (core WGSL; no f16 extension needed).
@group(0) @binding(1) var<storage, read> centroids: array<u32>;
@group(0) @binding(2) var<storage, read_write> cscores: array<f32>;
@group(0) @binding(3) var<storage, read> codes: array<u32>;
@group(0) @binding(4) var<storage, read> residuals: array<u32>;
@group(0) @binding(5) var<storage, read> weights: array<f32>;
@group(0) @binding(6) var<storage, read> docs: array<vec2<u32>>;
@group(0) @binding(7) var<storage, read> candidates: array<u32>;
@group(0) @binding(8) var<storage, read_write> out: array<f32>;
@group(0) @binding(9) var<storage, read_write> tops: array<u32>;
@group(0) @binding(10) var<uniform> params: Params;

var<workgroup> q_tile: array<f32, Q_ROWS * DIM>;
var<workgroup> d_tile: array<f32, TILE * DIM>;
var<workgroup> inv_norm: array<f32, TILE>;
var<workgroup> partial: array<f32, WG>;
var<workgroup> counted: atomic<u32>;
var<workgroup> greater: array<u32, WG>;
var<workgroup> ties: array<u32, WG>;
var<workgroup> greater_total: u32;
var<workgroup> sel_idx: array<u32, MAX_PROBE>;
var<workgroup> sel_key: array<u32, MAX_PROBE>;

// -Infinity (a constant expression may not be infinite, so it is built at run time).
fn neg_inf() -> f32 {
  var bits = 0xff800000u;
  return bitcast<f32>(bits);
}

// A u32 that orders like the float it encodes (for every non-NaN float: larger float, larger key).
fn order_key(s: f32) -> u32 {
  let b = bitcast<u32>(s);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Element e of the centroids (row-major, count x DIM).
fn centroid_at(e: u32) -> f32 {
  let h = unpack2x16float(centroids[e >> 1u]);
  return select(h.x, h.y, (e & 1u) == 1u);
}

// The centroid code of token j.
fn code_of(j: u32) -> u32 {
  if (CODE_BITS == 16u) {
    return (codes[j >> 1u] >> ((j & 1u) * 16u)) & 0xffffu;
  }
  return codes[j];
}

// The bucket of dimension d of token j.
fn bucket_of(j: u32, d: u32) -> u32 {
  let bit = d * NBITS;
  let byte = j * (DIM * NBITS / 8u) + (bit >> 3u);
  let shift = (byte & 3u) * 8u + (bit & 7u);
  return (residuals[byte >> 2u] >> shift) & ((1u << NBITS) - 1u);
}

// Grid (ceil(C / WG), ceil(q_count / Q_ROWS)): workgroup (x, y) scores centroids
// [x * WG, x * WG + WG) against query rows [y * Q_ROWS, y * Q_ROWS + Q_ROWS).
@compute @workgroup_size(WG)
fn centroid_scores_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let first = wid.y * Q_ROWS;
  let rows = min(Q_ROWS, params.q_count - first);
  for (var i = t; i < rows * DIM; i += WG) {
    q_tile[i] = query[first * DIM + i];
  }
  workgroupBarrier();
  let c = wid.x * WG + t;
  if (c >= params.centroid_count) {
    return;
  }
  let base = c * (DIM / 2u);
  for (var r = 0u; r < rows; r++) {
    var s = 0.0;
    for (var k = 0u; k < DIM; k += 2u) {
      let h = unpack2x16float(centroids[base + k / 2u]);
      s = fma(q_tile[r * DIM + k], h.x, s);
      s = fma(q_tile[r * DIM + k + 1u], h.y, s);
    }
    cscores[(first + r) * params.centroid_count + c] = s;
  }
}

// One workgroup per query row. T, the nprobe-th largest score of the row, by a radix select on
// order keys (one bit at a time from the top: the largest key with at least nprobe scores at or
// above it); then every centroid above T (fewer than nprobe) and the lowest-indexed ties at T fill
// the nprobe slots, each thread walking its own contiguous range so that ties keep index order;
// one thread sorts the slots (score descending, index ascending) and writes them.
@compute @workgroup_size(WG)
fn top_centroids_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let count = params.centroid_count;
  let n = params.nprobe;
  let base = wid.x * count;
  var prefix = 0u;
  for (var bit = 0u; bit < 32u; bit++) {
    let candidate = prefix | (0x80000000u >> bit);
    workgroupBarrier();
    if (t == 0u) {
      atomicStore(&counted, 0u);
    }
    workgroupBarrier();
    var m = 0u;
    for (var c = t; c < count; c += WG) {
      m += select(0u, 1u, order_key(cscores[base + c]) >= candidate);
    }
    atomicAdd(&counted, m);
    workgroupBarrier();
    if (atomicLoad(&counted) >= n) {
      prefix = candidate;
    }
  }

  let chunk = (count + WG - 1u) / WG;
  let lo = min(count, t * chunk);
  let hi = min(count, lo + chunk);
  var g = 0u;
  var e = 0u;
  for (var c = lo; c < hi; c++) {
    let key = order_key(cscores[base + c]);
    g += select(0u, 1u, key > prefix);
    e += select(0u, 1u, key == prefix);
  }
  greater[t] = g;
  ties[t] = e;
  workgroupBarrier();
  if (t == 0u) {
    var sg = 0u;
    var se = 0u;
    for (var i = 0u; i < WG; i++) {
      let a = greater[i];
      greater[i] = sg;
      sg += a;
      let b = ties[i];
      ties[i] = se;
      se += b;
    }
    greater_total = sg;
  }
  workgroupBarrier();
  var og = greater[t];
  var ot = greater_total + ties[t];
  for (var c = lo; c < hi; c++) {
    let key = order_key(cscores[base + c]);
    if (key > prefix) {
      sel_idx[og] = c;
      sel_key[og] = key;
      og++;
    } else if (key == prefix && ot < n) {
      sel_idx[ot] = c;
      sel_key[ot] = key;
      ot++;
    }
  }
  workgroupBarrier();
  if (t == 0u) {
    for (var i = 1u; i < n; i++) {
      let key = sel_key[i];
      let idx = sel_idx[i];
      var j = i;
      while (j > 0u && (sel_key[j - 1u] < key || (sel_key[j - 1u] == key && sel_idx[j - 1u] > idx))) {
        sel_key[j] = sel_key[j - 1u];
        sel_idx[j] = sel_idx[j - 1u];
        j--;
      }
      sel_key[j] = key;
      sel_idx[j] = idx;
    }
    for (var i = 0u; i < n; i++) {
      tops[wid.x * n + i] = sel_idx[i];
    }
  }
}

// One workgroup per candidate: thread t takes query rows t, t + WG, ...; thread 0 adds the row
// maxima in row order.
@compute @workgroup_size(WG)
fn interaction_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let ci = wid.y * params.grid_x + wid.x;
  // Uniform per workgroup (read-only storage), so every barrier below is reached by all or none.
  if (ci >= params.cand_count) {
    return;
  }
  let doc = docs[candidates[ci]];
  let start = doc.x;
  let count = doc.y;
  if (count == 0u) {
    if (t == 0u) {
      out[ci] = 0.0;
    }
    return;
  }
  let stride = params.centroid_count;
  var total = 0.0;
  for (var r0 = 0u; r0 < params.q_count; r0 += WG) {
    let row = r0 + t;
    var best = neg_inf();
    if (row < params.q_count) {
      let base = row * stride;
      for (var j = start; j < start + count; j++) {
        best = max(best, cscores[base + code_of(j)]);
      }
    }
    workgroupBarrier();
    partial[t] = best;
    workgroupBarrier();
    if (t == 0u) {
      for (var i = 0u; i < min(WG, params.q_count - r0); i++) {
        total += partial[i];
      }
    }
  }
  if (t == 0u) {
    out[ci] = total;
  }
}

// One workgroup per candidate, as ./maxsim.wgsl does for stored rows: the query rows of a pass in
// workgroup memory, the document's tokens decoded a tile at a time (each value once per pass),
// their norms, then thread t takes query row t % Q_ROWS against a share of the tile.
@compute @workgroup_size(WG)
fn residual_main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let ci = wid.y * params.grid_x + wid.x;
  if (ci >= params.cand_count) {
    return;
  }
  let doc = docs[candidates[ci]];
  let start = doc.x;
  let count = doc.y;
  if (count == 0u) {
    if (t == 0u) {
      out[ci] = 0.0;
    }
    return;
  }
  let parts = WG / Q_ROWS;
  let qi = t % Q_ROWS;
  let part = t / Q_ROWS;
  var total = 0.0;
  for (var q0 = 0u; q0 < params.q_count; q0 += Q_ROWS) {
    let qn = min(Q_ROWS, params.q_count - q0);
    workgroupBarrier();
    for (var i = t; i < qn * DIM; i += WG) {
      q_tile[i] = query[q0 * DIM + i];
    }
    let working = qi < qn && part < parts;
    var best = neg_inf();
    for (var r0 = 0u; r0 < count; r0 += TILE) {
      let n = min(TILE, count - r0);
      workgroupBarrier();
      for (var i = t; i < n * DIM; i += WG) {
        let j = start + r0 + i / DIM;
        let d = i % DIM;
        d_tile[i] = centroid_at(code_of(j) * DIM + d) + weights[bucket_of(j, d)];
      }
      workgroupBarrier();
      if (t < n) {
        var s = 0.0;
        for (var k = 0u; k < DIM; k++) {
          s = fma(d_tile[t * DIM + k], d_tile[t * DIM + k], s);
        }
        inv_norm[t] = select(0.0, 1.0 / sqrt(s), s > 0.0);
      }
      workgroupBarrier();
      if (working) {
        for (var r = part; r < n; r += parts) {
          var s = 0.0;
          for (var k = 0u; k < DIM; k++) {
            s = fma(q_tile[qi * DIM + k], d_tile[r * DIM + k], s);
          }
          best = max(best, s * inv_norm[r]);
        }
      }
    }
    partial[t] = best;
    workgroupBarrier();
    if (t == 0u) {
      for (var i = 0u; i < qn; i++) {
        var m = partial[i];
        for (var p = 1u; p < parts; p++) {
          m = max(m, partial[p * Q_ROWS + i]);
        }
        total += m;
      }
    }
  }
  if (t == 0u) {
    out[ci] = total;
  }
}
